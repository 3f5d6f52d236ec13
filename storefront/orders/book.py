"""The order book: orders made from holds and checkouts, as shoppers and the operator see them.

An order is a single hold, or a checkout with its holds as lines; it has the same id
as that hold or checkout, and a short reference derived from it (``SF-7KQ2M4XA``). Its
row in ``orders`` appears when the shopper gives delivery details or the payment
settles, whichever comes first; its status is read from its lines:

    held → paid → shipped,  or  refunded (paid after its stock was gone),  or  expired / cancelled
"""

import base64
import csv
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storefront.catalog.models import products
from storefront.clock import utcnow
from storefront.inventory.holds import status_of
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import holds
from storefront.money import major_units
from storefront.orders.delivery import COLUMNS as DELIVERY_COLUMNS
from storefront.orders.delivery import Delivery, delivery_from_intent, delivery_from_order
from storefront.orders.models import Order
from storefront.owners import Owner
from storefront.spreadsheets import spreadsheet_cell

orders = Order.__table__
# The demo gateway's PaymentIntent ids start so (payments/gateway.py makes them): an order paid
# through it took no money, and says so wherever it is shown.
DEMO_INTENT_PREFIX = "pi_demo_"
DEMO_LABEL = "demo: no money taken"
REFUND_REASON = "paid after its hold had lapsed and the stock was gone: the payment was refunded"
STRIPE_REFUND_REASON = "refunded in Stripe (its Dashboard or API), not by the shop"


def reference_of(order_id: uuid.UUID) -> str:
    """A short reference a shopper can read out: 40 random bits of the id in base 32. The last five
    bytes: a hold's id is a UUIDv7, whose first six are the time, so two orders of one moment once
    read alike (SF-AGREXCSZ, SF-AGREXCS4)."""
    return "SF-" + base64.b32encode(order_id.bytes[-5:]).decode()


def _insert(conn: Connection):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(orders)


def _owner_columns(kind: str, subject) -> dict:
    return {"id": subject.id, "kind": kind, "user_id": subject.user_id, "browser_id": subject.browser_id,
            "amount": subject.amount, "currency": subject.currency}


def record_delivery(conn: Connection, kind: str, subject, delivery: Delivery, shop_url: str | None = None) -> None:
    """Keep the shopper's delivery details on the order of ``subject`` (a hold or a checkout row), and
    the shop's address as their browser reached it (the order's link in its emails).

    Given again before the payment, they replace the earlier ones; once it is paid they stay.
    """
    now = utcnow()
    given = {**delivery.columns(), "shop_url": shop_url[:200] if shop_url else None}
    statement = _insert(conn).values(**_owner_columns(kind, subject), **given, created_at=now, updated_at=now)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[orders.c.id], set_={**given, "updated_at": now},
        where=orders.c.paid_at.is_(None)))


def _paid_upsert(dialect):
    """An order paid: made if need be; the first payment time stands, and what the order
    already knows of its delivery wins over what Stripe kept."""
    statement = dialect.insert(orders)
    kept = {column: func.coalesce(orders.c[column], statement.excluded[column]) for column in DELIVERY_COLUMNS}
    return statement.on_conflict_do_update(
        index_elements=[orders.c.id],
        set_={**kept, "paid_at": func.coalesce(orders.c.paid_at, statement.excluded.paid_at),
              "updated_at": statement.excluded.updated_at},
    ).returning(orders.c.id, orders.c.email)


# Built once: a batch's rows go through SQLAlchemy's insertmanyvalues, one statement, compiled once.
_PAID_UPSERT = {"postgresql": _paid_upsert(postgresql), "sqlite": _paid_upsert(sqlite)}


def record_paid(conn: Connection, paid: list[tuple[str, object, dict]]) -> set[uuid.UUID]:
    """Payments settled for these (kind, hold or checkout row, message): their orders are paid,
    once (the first time stands), in one statement however many there are.

    Delivery details Stripe kept on the PaymentIntent fill only what an order lacks. Runs in
    the settlement's transaction. Returns the orders that have an email to confirm to.
    """
    if not paid:
        return set()
    now = utcnow()
    rows = {}
    for kind, subject, message in paid:  # one row per order: a statement may not upsert a row twice
        details = delivery_from_intent(message.get("receiptEmail"), message.get("shipping"))
        rows.setdefault(subject.id, {**_owner_columns(kind, subject), **dict.fromkeys(DELIVERY_COLUMNS), **details,
                                     "paid_at": now, "created_at": now, "updated_at": now})
    upserted = conn.execute(_PAID_UPSERT[conn.dialect.name], list(rows.values()))
    return {order_id for order_id, email in upserted if email}


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    name: str
    quantity: int
    amount: int
    currency: str
    status: str  # the hold's status as the shopper sees it


@dataclass
class OrderSummary:
    id: uuid.UUID
    kind: str
    created_at: datetime
    lines: list[OrderLine] = field(default_factory=list)
    row: object = None  # the orders row, once there is one
    demo: bool = False  # paid (or to be paid) through the demo gateway: no money moves
    # False for a reader known by its visitor id alone (no browser secret): identical phones
    # share a visitor id, so an email and an address are shown only to the browser that gave them.
    shows_personal_details: bool = True

    @property
    def reference(self) -> str:
        return reference_of(self.id)

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def currency(self) -> str:
        return self.lines[0].currency if self.lines else "usd"

    @property
    def refunded_by_shop(self) -> int:
        """What the shop refunded: the lines paid after their stock was gone."""
        return sum(line.amount for line in self.lines if line.status == HoldStatus.REFUNDED)

    @property
    def refunded_amount(self) -> int:
        return max(self.refunded_by_shop, self.stripe_refunded_amount)

    @property
    def stripe_refunded_amount(self) -> int:
        return (self.row.stripe_refunded_amount or 0) if self.row is not None else 0

    @property
    def refund_reason(self) -> str | None:
        if self.stripe_refunded_amount > self.refunded_by_shop:
            return STRIPE_REFUND_REASON
        return REFUND_REASON if self.refunded_by_shop else None

    @property
    def delivery(self) -> Delivery | None:
        if self.row is None or not self.shows_personal_details:
            return None
        return delivery_from_order(self.row)

    @property
    def paid_at(self) -> datetime | None:
        return self.row.paid_at if self.row is not None else None

    @property
    def shipped_at(self) -> datetime | None:
        return self.row.shipped_at if self.row is not None else None

    @property
    def tracking_reference(self) -> str | None:
        return self.row.tracking_reference if self.row is not None else None

    @property
    def status(self) -> str:
        statuses = [line.status for line in self.lines]
        if self.lines and self.stripe_refunded_amount >= self.amount:
            return "refunded"
        if HoldStatus.COMPLETED in statuses:
            return "shipped" if self.shipped_at else "paid"
        if HoldStatus.PENDING in statuses:
            return "held"
        if HoldStatus.REFUNDED in statuses:
            return "refunded"
        return str(statuses[0]).lower() if statuses else "unknown"

    @property
    def to_fulfil(self) -> bool:
        return self.status == "paid"


_LINES = (
    select(holds, products.c.name.label("product_name"))
    .join(products, products.c.id == holds.c.product_id)
)


def _summaries(conn: Connection, rows: Iterable, now: datetime) -> list[OrderSummary]:
    """Hold rows (newest first) grouped into orders, with each order's row attached."""
    grouped: dict[uuid.UUID, OrderSummary] = {}
    for row in rows:
        order_id, kind = (row.checkout_id, "checkout") if row.checkout_id else (row.id, "hold")
        summary = grouped.setdefault(order_id, OrderSummary(order_id, kind, row.created_at))
        summary.lines.append(OrderLine(row.product_id, row.product_name, row.quantity, row.amount, row.currency,
                                       str(status_of(row, now))))
        summary.demo = summary.demo or (row.payment_intent_id or "").startswith(DEMO_INTENT_PREFIX)
    if grouped:
        for order in conn.execute(select(orders).where(orders.c.id.in_(list(grouped)))):
            grouped[order.id].row = order
    for summary in grouped.values():
        summary.lines.sort(key=lambda line: line.product_id)
    return list(grouped.values())


def holds_of(conn: Connection, owner: Owner, limit: int = 100) -> list:
    """The owner's last ``limit`` holds, newest first, each with its product's name."""
    return conn.execute(_LINES.where(holds.c.user_id == owner.visitor_id, holds.c.browser_id == owner.browser_id)
                        .order_by(holds.c.created_at.desc(), holds.c.product_id).limit(limit)).all()


def _as_seen_by(summaries: list[OrderSummary], owner: Owner | None) -> list[OrderSummary]:
    """Without the browser secret, an owner's orders come without their personal details."""
    if owner is not None and not owner.browser_id:
        for summary in summaries:
            summary.shows_personal_details = False
    return summaries


def orders_of(conn: Connection, owner: Owner, limit: int = 100) -> list[OrderSummary]:
    """The owner's orders, newest first (their last ``limit`` holds, grouped): what is held, paid or
    refunded. A hold released or lapsed unpaid was never an order (the JSON list still has it)."""
    summaries = _summaries(conn, holds_of(conn, owner, limit), utcnow())
    return _as_seen_by([summary for summary in summaries if summary.status not in ("cancelled", "expired")], owner)


def _lines_of(order_ids: list[uuid.UUID]):
    return or_(and_(holds.c.id.in_(order_ids), holds.c.checkout_id.is_(None)), holds.c.checkout_id.in_(order_ids))


def order_of(conn: Connection, order_id: uuid.UUID, owner: Owner | None = None) -> OrderSummary | None:
    """One order; with an owner, only if it is theirs (anyone else's is as good as unknown)."""
    query = _LINES.where(_lines_of([order_id]))
    if owner is not None:
        query = query.where(holds.c.user_id == owner.visitor_id, holds.c.browser_id == owner.browser_id)
    found = _as_seen_by(_summaries(conn, conn.execute(query.order_by(holds.c.product_id)).all(), utcnow()), owner)
    return found[0] if found else None


def paid_order_ids_of_buyer(conn: Connection, email_key: str, limit: int = 200) -> list[uuid.UUID]:
    """The paid orders placed with this email (its buyer key: orders/delivery.py's buyer_email)."""
    return list(conn.execute(select(orders.c.id).where(orders.c.buyer_email == email_key, orders.c.paid_at.is_not(None))
                             .order_by(orders.c.paid_at.desc()).limit(limit)).scalars())


def paid_orders(conn: Connection, limit: int = 200) -> list[OrderSummary]:
    """Paid orders for the operator: those to fulfil first (oldest payment first), then the rest, newest first."""
    paid = orders.c.paid_at.is_not(None)
    order_ids = list(conn.execute(select(orders.c.id).where(paid, orders.c.shipped_at.is_(None))
                                  .order_by(orders.c.paid_at).limit(limit)).scalars())
    order_ids += conn.execute(select(orders.c.id).where(paid, orders.c.shipped_at.is_not(None))
                              .order_by(orders.c.paid_at.desc()).limit(max(limit - len(order_ids), 0))).scalars()
    if not order_ids:
        return []
    summaries = _summaries(conn, conn.execute(_LINES.where(_lines_of(order_ids))).all(), utcnow())
    to_fulfil = sorted((s for s in summaries if s.to_fulfil), key=lambda s: s.paid_at)
    others = sorted((s for s in summaries if not s.to_fulfil), key=lambda s: s.paid_at, reverse=True)
    return to_fulfil + others


class NotShippable(Exception):
    """Only a paid order with something sold in it can be shipped."""


def mark_shipped(conn: Connection, order_id: uuid.UUID, tracking_reference: str | None) -> OrderSummary | None:
    """The operator sent the parcel. Marking again changes the tracking reference only.

    Returns the order, None if unknown; raises NotShippable for an order not paid or wholly refunded.
    """
    order = order_of(conn, order_id)
    if order is None or order.row is None:
        return None
    if order.status not in ("paid", "shipped"):
        raise NotShippable(order.status)
    now = utcnow()
    conn.execute(update(orders).where(orders.c.id == order_id).values(
        shipped_at=func.coalesce(orders.c.shipped_at, now), tracking_reference=tracking_reference or None,
        updated_at=now))
    return order_of(conn, order_id)


def record_stripe_refund(conn: Connection, payment_intent_id: str, amount_refunded: int) -> int:
    """Stripe says ``amount_refunded`` of this intent's payment is refunded in all (``charge.refunded``):
    kept on its order. Only ever grows, so a repeated or late event changes nothing. Returns orders changed."""
    order_ids = select(func.coalesce(holds.c.checkout_id, holds.c.id)).where(
        holds.c.payment_intent_id == payment_intent_id).scalar_subquery()
    changed = conn.execute(update(orders).where(
        orders.c.id.in_(order_ids),
        or_(orders.c.stripe_refunded_amount.is_(None), orders.c.stripe_refunded_amount < amount_refunded),
    ).values(stripe_refunded_amount=amount_refunded, stripe_refunded_at=utcnow(), updated_at=utcnow()))
    return changed.rowcount


CSV_COLUMNS = ("reference", "status", "paid_at", "email", "name", "line1", "line2", "city", "state",
               "postal_code", "country", "items", "amount", "refunded", "currency", "shipped_at", "tracking",
               "payment")


def orders_csv(summaries: Iterable[OrderSummary]) -> str:
    """Orders as CSV for a spreadsheet or a carrier's import: one row per order."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for order in summaries:
        delivery = order.delivery
        writer.writerow([spreadsheet_cell(value) for value in (
            order.reference, order.status, order.paid_at.isoformat() if order.paid_at else "",
            *((delivery.email, delivery.name, delivery.line1, delivery.line2, delivery.city, delivery.state,
               delivery.postal_code, delivery.country) if delivery else ("",) * 8),
            "; ".join(f"{line.quantity} x {line.name}" for line in order.lines if line.status != "REFUNDED"),
            major_units(order.amount, order.currency), major_units(order.refunded_amount, order.currency),
            order.currency.upper(), order.shipped_at.isoformat() if order.shipped_at else "",
            order.tracking_reference or "", DEMO_LABEL if order.demo else "stripe")])
    return out.getvalue()


def unconfirmed_orders(conn: Connection, paid_before: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Paid orders with an email whose confirmation has not gone out, paid before ``paid_before``."""
    return list(conn.execute(
        select(orders.c.id)
        .where(orders.c.paid_at.is_not(None), orders.c.email.is_not(None), orders.c.confirmation_sent_at.is_(None),
               orders.c.paid_at < paid_before)
        .order_by(orders.c.paid_at).limit(limit)).scalars())
