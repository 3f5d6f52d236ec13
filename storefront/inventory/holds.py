"""A hold's life: placed for a visitor, found again, cancelled, lapsed.

Every function works on rows of the ``holds`` table through SQLAlchemy Core:
the hold is the hot path, and a Row carries everything the API shows.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from storefront.clock import isoformat_z, utcnow
from storefront.extensions import db
from storefront.inventory.models import HoldStatus, is_pending
from storefront.inventory.stock import (
    give_back_units,
    holds,
    release_lapsed_holds,
    reserve_units,
    stock_of,
)


class ProductNotFound(LookupError):
    pass


class HoldNotFound(LookupError):
    pass


class OutOfStock(Exception):
    def __init__(self, available: int):
        super().__init__(f"only {available} available")
        self.available = available


class HoldNotPending(Exception):
    def __init__(self, hold: Row):
        super().__init__(f"hold is {status_of(hold)}")
        self.hold = hold


@dataclass(frozen=True)
class PlacedHold:
    hold: Row
    created: bool


def status_of(hold: Row, now: datetime | None = None) -> str:
    """The status as the shopper sees it: a PENDING hold past its time has lapsed."""
    if hold.status == HoldStatus.PENDING and hold.expires_at <= (now or utcnow()):
        return HoldStatus.EXPIRED
    return hold.status


def hold_json(hold: Row, now: datetime | None = None) -> dict:
    return {
        "reservationId": str(hold.id),
        "status": str(status_of(hold, now)),
        "productId": hold.product_id,
        "userId": hold.user_id,
        "quantity": hold.quantity,
        "amount": hold.amount,
        "currency": hold.currency,
        "expiresAt": isoformat_z(hold.expires_at),
        "paymentIntentId": hold.payment_intent_id,
    }


def place_hold(product_id: int, user_id: str, quantity: int, ttl_seconds: int) -> PlacedHold:
    """Hold ``quantity`` units for the visitor, or give back the live hold they already have.

    Race-free across processes: units are reserved by one guarded UPDATE under
    the product's row lock, and a partial unique index allows one PENDING hold
    per visitor and product, so twenty presses of Buy at once make one hold.
    Raises ProductNotFound or OutOfStock.
    """
    # A conflicting hold can lapse between our release and our insert; the next
    # round releases it. Two rounds settle it; the third is only a safety net.
    for _ in range(3):
        now = utcnow()
        release_lapsed_holds(product_id, now)
        terms = reserve_units(product_id, quantity)
        if terms is None:
            db.session.commit()  # keep the lapsed holds we released
            existing = live_hold(product_id, user_id, now)
            if existing is not None:
                return PlacedHold(existing, created=False)
            stock = stock_of(product_id, now)
            db.session.rollback()
            if stock is None:
                raise ProductNotFound(product_id)
            raise OutOfStock(stock.available)

        price, currency = terms
        placed = db.session.execute(
            _insert_unless_held()
            .values(
                id=uuid.uuid4(),
                product_id=product_id,
                user_id=user_id,
                quantity=quantity,
                amount=price * quantity,
                currency=currency,
                status=HoldStatus.PENDING,
                expires_at=now + timedelta(seconds=ttl_seconds),
                created_at=now,
                updated_at=now,
            )
            .returning(*holds.c)
        ).first()
        if placed is not None:
            db.session.commit()
            return PlacedHold(placed, created=True)

        # This visitor already holds the product: undo our reservation, return theirs.
        db.session.rollback()
        existing = live_hold(product_id, user_id, utcnow())
        db.session.rollback()
        if existing is not None:
            return PlacedHold(existing, created=False)
    raise RuntimeError("could not settle a hold after three rounds")


def _insert_unless_held():
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    return insert(holds).on_conflict_do_nothing(
        index_elements=[holds.c.product_id, holds.c.user_id],
        index_where=is_pending,
    )


def live_hold(product_id: int, user_id: str, now: datetime) -> Row | None:
    return db.session.execute(
        select(holds).where(
            holds.c.product_id == product_id,
            holds.c.user_id == user_id,
            is_pending,
            holds.c.expires_at > now,
        )
    ).first()


def find_hold(hold_id: uuid.UUID, user_id: str) -> Row | None:
    """The visitor's own hold; another visitor's is as good as unknown."""
    return db.session.execute(
        select(holds).where(holds.c.id == hold_id, holds.c.user_id == user_id)
    ).first()


def cancel_hold(hold_id: uuid.UUID, user_id: str) -> Row:
    """Release a live hold at the shopper's request. Raises HoldNotFound or HoldNotPending."""
    now = utcnow()
    cancelled = db.session.execute(
        update(holds)
        .where(
            holds.c.id == hold_id,
            holds.c.user_id == user_id,
            is_pending,
            holds.c.expires_at > now,
        )
        .values(status=HoldStatus.CANCELLED, updated_at=now)
        .returning(*holds.c)
    ).first()
    if cancelled is None:
        db.session.rollback()
        hold = find_hold(hold_id, user_id)
        db.session.rollback()
        if hold is None:
            raise HoldNotFound(hold_id)
        raise HoldNotPending(hold)
    give_back_units(cancelled.product_id, cancelled.quantity)
    db.session.commit()
    return cancelled


def sweep_lapsed_holds(now: datetime | None = None) -> int:
    """Mark every lapsed PENDING hold EXPIRED, one product per transaction. Returns units freed."""
    now = now or utcnow()
    product_ids = db.session.execute(
        select(holds.c.product_id)
        .where(is_pending, holds.c.expires_at <= now)
        .distinct()
    ).scalars().all()
    db.session.rollback()
    freed = 0
    for product_id in product_ids:
        freed += release_lapsed_holds(product_id, now)
        db.session.commit()
    return freed
