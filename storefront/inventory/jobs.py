"""The sweep: lapsed holds become EXPIRED, and their PaymentIntents are cancelled.

Availability never waits for it (a lapsed hold stops counting on its own); the
sweep makes the statuses true and closes the intents, so a lapsed hold can
rarely be paid at all. Safe when several workers run it at once: each product
is swept under its own lock.
"""

import logging

from storefront.extensions import db
from storefront.inventory.holds import sweep_lapsed_holds
from storefront.metrics import SWEEPS, SWEPT_UNITS, measured_job
from storefront.payments.jobs import release_unpaid_payments

log = logging.getLogger(__name__)


@measured_job("sweep_expired_holds")
def sweep_expired_holds() -> dict:
    with db.engine.connect() as conn:
        units = sweep_lapsed_holds(conn)
    intents = release_unpaid_payments()
    SWEEPS.inc()
    SWEPT_UNITS.inc(units)
    if units or intents:
        log.info("sweep: %d units released, %d payment intents cancelled", units, intents)
    return {"unitsReleased": units, "intentsCancelled": intents}
