"""What a shopper pays for, in one shape: a *payable*.

A payable is a kind (``hold``: one hold, paid on its own; ``checkout``: a cart's holds, paid
together; ``entry``: a draw entry, its card authorised at entry and captured only if it wins), its
own row (the hold's, the checkout's or the entry's: the id, the owner, the amount and currency, the
PaymentIntent, the refund), and its lines: the holds it pays for (the hold itself, the checkout's,
or the hold a winning entry was given, whose id is the entry's: none before the draw). Every step of paying takes a payable and never asks which kind it is: opening the
intent (``payments/intents.py``), the delivery details, the demo gateway's Pay, settling and
refunding (``payments/completion.py``, ``payments/settlement.py``), the payment form and the
return page (``shop/payments.py``). A kind differs only in the few facts this module keeps in one
table (``KINDS``): how Stripe's metadata names it, the keys its intent and refund are made under
(unchanged from before there was one shape, so that a retry across a deploy reuses them), whether its
intent is captured later (an entry's), and the kind of order it makes.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.engine import Row

from storefront.cart.checkout import checkout_holds, find_checkout, remember_checkout_intent, remember_checkout_refund
from storefront.clock import utcnow
from storefront.inventory import draw, hold_rows
from storefront.inventory.holds import find_hold, hold_by_id
from storefront.inventory.stock import holds, lock_product, products
from storefront.owners import Owner


@dataclass(frozen=True)
class Kind:
    name: str
    id_field: str  # the metadata key (and the Kafka message's) that names a payable of this kind
    intent_key: str  # the idempotency key's prefix of its PaymentIntent
    refund_key: str  # and of its refund ("" for a hold: its bare id, as before kinds had a table)
    order_kind: str  # the order it makes: a hold's (its one line) or a checkout's
    capture_method: str | None = None  # "manual": authorised now, captured later (Stripe's default: at once)


KINDS = {
    "hold": Kind("hold", "reservationId", "hold", "", "hold"),
    "checkout": Kind("checkout", "checkoutId", "checkout", "checkout-", "checkout"),
    # A winning entry's line is a hold whose id is the entry's: its order is that hold's.
    "entry": Kind("entry", "drawEntryId", "entry", "entry-", "hold", capture_method="manual"),
}


@dataclass(frozen=True)
class Payable:
    kind: Kind
    row: Row  # the hold's or the checkout's row
    lines: tuple[Row, ...]  # the holds paid for, in product order

    @property
    def id(self) -> uuid.UUID:
        return self.row.id

    @property
    def amount(self) -> int:
        return self.row.amount

    @property
    def currency(self) -> str:
        return self.row.currency

    @property
    def payment_intent_id(self) -> str | None:
        return self.row.payment_intent_id

    @property
    def refund_id(self) -> str | None:
        return self.row.refund_id

    @property
    def intent_key(self) -> str:
        return f"{self.kind.intent_key}-{self.id}"

    @property
    def refund_key(self) -> str:
        return f"{self.kind.refund_key}{self.id}"

    def is_live(self, now: datetime | None = None) -> bool:
        """Some of it can still be paid: a line still held."""
        now = now or utcnow()
        return any(hold_rows.is_live(line, now) for line in self.lines)

    def metadata(self) -> dict:
        """What its PaymentIntent carries (the contract's metadata), so that Stripe's events name it."""
        if self.kind.name == "hold":
            return {"productId": str(self.row.product_id), "userId": self.row.user_id, "reservationId": str(self.id)}
        if self.kind.name == "entry":
            return {"productId": str(self.row.product_id), "userId": self.row.user_id, "drawEntryId": str(self.id)}
        # Stripe caps a metadata value at 500 characters: cart.checkout.MAX_CART_LINES keeps the ids within it.
        return {"checkoutId": str(self.id), "userId": self.row.user_id,
                "reservationIds": ",".join(str(line.id) for line in self.lines)}


def hold_payable(hold: Row) -> Payable:
    """A hold already read, as the payable of one line it is."""
    return Payable(KINDS["hold"], hold, (hold,))


def payable(conn: Connection, kind: str, payable_id: uuid.UUID, owner: Owner | None = None) -> Payable | None:
    """The payable of this kind and id: the owner's (404 for anyone else's, as for an unknown one), or,
    without an owner, anyone's (the shop's own bookkeeping). None when there is none."""
    if kind == "hold":
        row = find_hold(conn, payable_id, owner) if owner is not None else hold_by_id(conn, payable_id)
        return hold_payable(row) if row is not None else None
    if kind == "entry":
        row = draw.entry_by_id(conn, payable_id)
        if row is None or (owner is not None and (row.user_id, row.browser_id) != (owner.visitor_id, owner.browser_id)):
            return None
        line = hold_by_id(conn, payable_id)
        return Payable(KINDS[kind], row, (line,) if line is not None else ())
    row = find_checkout(conn, payable_id, owner)
    return Payable(KINDS[kind], row, tuple(checkout_holds(conn, payable_id))) if row is not None else None


def names_a_payable(message: dict) -> bool:
    """Whether a payment message (or an intent's metadata) names one of ours, of any kind: an intent
    without is another integration's on the same Stripe account."""
    return any(message.get(kind.id_field) for kind in KINDS.values())


def named_by(message: dict) -> tuple[str, uuid.UUID | None]:
    """The payable a payment message (or an intent's metadata) names: its kind, and its id (None when
    the id is missing or malformed)."""
    kind = "checkout" if message.get("checkoutId") else "entry" if message.get("drawEntryId") else "hold"
    try:
        return kind, uuid.UUID(str(message.get(KINDS[kind].id_field)))
    except ValueError:
        return kind, None


_LOCK_PRODUCT_OF_HOLD = (
    select(products.c.id)
    .where(products.c.id == select(holds.c.product_id).where(holds.c.id == bindparam("hold")).scalar_subquery())
    .with_for_update(key_share=True)
)


def locked(conn: Connection, kind: str, payable_id: uuid.UUID) -> Payable | None:
    """The payable, read (again) under its products' locks, taken first and in id order: stable until
    the transaction ends. None when there is none."""
    if kind == "hold" and conn.dialect.name == "postgresql":
        # One statement finds the hold's product and locks it; the hold is read after.
        if conn.execute(_LOCK_PRODUCT_OF_HOLD, {"hold": payable_id}).first() is None:
            return None
        return payable(conn, kind, payable_id)
    line_of = holds.c.checkout_id if kind == "checkout" else holds.c.id
    product_ids = sorted(conn.execute(select(holds.c.product_id).where(line_of == payable_id).distinct()).scalars())
    for product_id in product_ids:
        lock_product(conn, product_id)
    return payable(conn, kind, payable_id)


def remember_intent(conn: Connection, paid: Payable, intent_id: str) -> None:
    """Its PaymentIntent, once created: on its row, and on each of its lines."""
    if paid.kind.name == "checkout":
        remember_checkout_intent(conn, paid.id, intent_id)
    elif paid.kind.name == "entry":
        draw.remember_intent(conn, paid.id, intent_id)
    else:
        hold_rows.remember_intent(conn, intent_id, hold_id=paid.id)


def remember_refund(conn: Connection, paid: Payable, refund_id: str) -> None:
    """The refund of its lines that could not be sold, once issued: on its row, and on those lines."""
    if paid.kind.name == "checkout":
        remember_checkout_refund(conn, paid.id, refund_id)
    elif paid.kind.name == "entry":
        draw.remember_refund(conn, paid.id, refund_id)
    hold_rows.remember_refund(conn, [line.id for line in paid.lines], refund_id)
