"""A hold's row: the one Python module that writes it, and the one definition of a live hold.

Every change to the ``holds`` table made from Python is a function here: a hold placed (alone, or
a checkout's lines), released by its shopper, taken over by a checkout, lapsed (EXPIRED), decided
by a payment (COMPLETED, REFUNDED, CANCELLED), its PaymentIntent and refund noted, and the
reconciliation's bookkeeping. The other areas decide *when*; this says *how* a row changes. The
PL/pgSQL hold function (``inventory/sql/place_hold_v9.sql``) stays the measured fast path for a
single hold, and the grant rule's table (tests/test_grant_rule.py) keeps its rule and the Python
one equal. ``tests/test_house.py`` checks nobody else writes the table or compares ``expires_at``.

A hold is *live* while it is PENDING and its ``expires_at`` is still ahead: only then do its units
count as held. Past it, it has *lapsed*, whether or not the sweep has marked it EXPIRED yet.
"""

import uuid
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, literal_column, update
from sqlalchemy.engine import Row
from sqlalchemy.sql import ColumnElement

from storefront.clock import UTCDateTime, utcnow
from storefront.inventory.models import Hold, HoldStatus, is_pending

holds = Hold.__table__


def unexpired(now) -> ColumnElement[bool]:
    """Its time is still ahead at ``now`` (a datetime, or a bound parameter)."""
    return holds.c.expires_at > now


def live(now) -> ColumnElement[bool]:
    """In SQL: PENDING, its time still ahead at ``now``: its units are held."""
    return is_pending & unexpired(now)


def lapsed(now) -> ColumnElement[bool]:
    """In SQL: PENDING, its time up at ``now``: its units are free, whether or not the sweep came."""
    return is_pending & (holds.c.expires_at <= now)


def is_live(hold: Row, now: datetime | None = None) -> bool:
    """In Python, of a row read: the same as :func:`live`."""
    return hold.status == HoldStatus.PENDING and hold.expires_at > (now or utcnow())


def status_of(hold: Row, now: datetime | None = None) -> str:
    """The status as the shopper sees it: a PENDING hold past its time has lapsed."""
    if hold.status == HoldStatus.PENDING and not is_live(hold, now):
        return HoldStatus.EXPIRED
    return hold.status


# Placing.

def insert_hold(conn: Connection, values: dict) -> Row:
    """A new hold's row (a PENDING one, its units already counted as held in its bucket)."""
    return conn.execute(insert(holds).returning(*holds.c), values).first()


def insert_holds(conn: Connection, rows: list[dict]) -> None:
    """A checkout's new rows, one per line."""
    conn.execute(insert(holds), rows)


# Releasing: each returns what it released, for the caller to give the units back to their buckets.

_owned = (holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"))
_now = bindparam("now", type_=UTCDateTime)
_CANCEL = (
    update(holds)
    .where(holds.c.id == bindparam("hold"), *_owned, live(_now))
    .values(status=literal_column("'CANCELLED'"), updated_at=_now)
    .returning(*holds.c)
)
_EXPIRE_LAPSED = (
    update(holds)
    .where(holds.c.product_id == bindparam("product"), lapsed(_now))
    .values(status=literal_column("'EXPIRED'"), updated_at=_now)
    .returning(holds.c.bucket, holds.c.quantity)
)


def cancel_own(conn: Connection, hold_id: uuid.UUID, visitor_id: str, browser_id: str, now: datetime) -> Row | None:
    """The owner's live hold, released at their request (CANCELLED); None when it is not live."""
    return conn.execute(_CANCEL, {"hold": hold_id, "visitor": visitor_id, "browser": browser_id, "now": now}).first()


def expire_lapsed(conn: Connection, product_id: int, now: datetime) -> list[Row]:
    """The product's lapsed holds marked EXPIRED: (bucket, quantity) of each."""
    return conn.execute(_EXPIRE_LAPSED, {"product": product_id, "now": now}).all()


def take_over_own(conn: Connection, visitor_id: str, browser_id: str, product_ids: list[int], now: datetime) -> list[Row]:
    """The owner's live holds on these products, released (CANCELLED) for a checkout that takes them over."""
    return conn.execute(
        update(holds)
        .where(holds.c.user_id == visitor_id, holds.c.browser_id == browser_id, holds.c.product_id.in_(product_ids),
               live(now))
        .values(status=literal_column("'CANCELLED'"), updated_at=now)
        .returning(holds.c.id, holds.c.product_id, holds.c.bucket, holds.c.quantity, holds.c.payment_intent_id,
                   holds.c.expires_at)
    ).all()


# Paying.

def set_status(conn: Connection, hold_id: uuid.UUID, status: HoldStatus, now: datetime, **values) -> None:
    """A payment's decision on one hold (COMPLETED, REFUNDED, CANCELLED), with what goes with it."""
    conn.execute(update(holds).where(holds.c.id == hold_id)
                 .values(status=literal_column(f"'{status.value}'"), updated_at=now, **values))


def remember_intent(conn: Connection, intent_id: str, *, hold_id: uuid.UUID | None = None,
                    checkout_id: uuid.UUID | None = None) -> None:
    """The PaymentIntent made for a hold, or for each of a checkout's holds, once."""
    which = holds.c.id == hold_id if hold_id is not None else holds.c.checkout_id == checkout_id
    conn.execute(update(holds).where(which, holds.c.payment_intent_id.is_(None)).values(payment_intent_id=intent_id))


def remember_refund(conn: Connection, hold_ids: list[uuid.UUID], refund_id: str) -> None:
    """The refund issued for those of these holds that a payment could not buy (REFUNDED), once."""
    conn.execute(update(holds).where(holds.c.id.in_(hold_ids), holds.c.status == literal_column("'REFUNDED'"),
                                     holds.c.refund_id.is_(None)).values(refund_id=refund_id))


# Reconciling a PaymentIntent with Stripe (payments/reconcile.py).

released = holds.c.status.in_([literal_column("'EXPIRED'"), literal_column("'CANCELLED'")])


def note_intent(conn: Connection, intent_id: str, **values) -> None:
    """Reconciliation's bookkeeping on every hold of an intent: when to ask Stripe again, and how often it asked."""
    conn.execute(update(holds).where(holds.c.payment_intent_id == intent_id).values(**values))


def mark_intent_settled(conn: Connection, intent_id: str, now: datetime) -> None:
    """Stripe and the shop agree on this intent now: its released holds need no more asking."""
    conn.execute(update(holds).where(holds.c.payment_intent_id == intent_id, released,
                                     holds.c.payment_released_at.is_(None)).values(payment_released_at=now))
