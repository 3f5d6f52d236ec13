"""The inventory's part of every sweep (storefront/sweep.py): lapsed holds become EXPIRED, and
each started line lets in whoever its stock allows.

Availability never waits for it (a lapsed hold stops counting on its own); the
sweep makes the statuses true. Safe when several workers run it at once: each
product is swept under its own lock. Their payments are reconciled with Stripe
by payments' part of the same sweep (``payments/jobs.py``), registered after this one.
"""

from flask import Flask, current_app
from sqlalchemy import select

from storefront.clock import utcnow
from storefront.database import reading
from storefront.extensions import db
from storefront.inventory import queue
from storefront.inventory.holds import sweep_lapsed_holds
from storefront.metrics import SWEPT_UNITS
from storefront.proof_of_work import forget_lapsed
from storefront.sweep import every_sweep


def init_app(app: Flask) -> None:
    every_sweep(app, "unitsReleased", expire_lapsed_holds)
    every_sweep(app, "placesAdmitted", advance_queues)


def expire_lapsed_holds() -> int:
    """Mark every lapsed PENDING hold EXPIRED; returns the units released."""
    units = sweep_lapsed_holds()
    SWEPT_UNITS.inc(units)
    return units


def advance_queues() -> int:
    """Every sweep: each started waiting room admits the places its stock allows now (a lapsed
    hold's units, an unused pass), should no page or script have asked in the meantime; spent
    proofs of work past their expiry are forgotten. Returns the places admitted."""
    settings = current_app.config["STOREFRONT"]
    now = utcnow()
    with reading() as conn:
        product_ids = queue.queues_to_advance(conn, now)
    admitted = 0
    for product_id in product_ids:
        with db.engine.begin() as conn:
            product = queue.queued_product(conn, product_id, settings.queue_opens_before_seconds)
            before = conn.execute(select(queue.rooms.c.admitted_through)
                                  .where(queue.rooms.c.product_id == product_id)).scalar() or 0
            room = queue.advance(conn, product, now, settings.queue_pass_seconds)
            admitted += (room.admitted_through - before) if room is not None else 0
    with db.engine.begin() as conn:
        forget_lapsed(conn, now)
    return admitted
