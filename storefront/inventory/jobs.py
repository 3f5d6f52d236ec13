"""The sweep's part in holds: lapsed holds become EXPIRED.

Availability never waits for it (a lapsed hold stops counting on its own); the
sweep makes the statuses true. Safe when several workers run it at once: each
product is swept under its own lock. Their payments are reconciled with Stripe
by the job that calls this one (``payments/jobs.py``).
"""

from storefront.inventory.holds import sweep_lapsed_holds
from storefront.metrics import SWEPT_UNITS


def expire_lapsed_holds() -> int:
    """Mark every lapsed PENDING hold EXPIRED; returns the units released."""
    units = sweep_lapsed_holds()
    SWEPT_UNITS.inc(units)
    return units
