"""The sweep: every area's periodic work, run once every SWEEP_INTERVAL_SECONDS (``python worker.py``
enqueues it; in embedded mode a thread of the web process runs it; ``flask sweep`` runs it once).

Each area registers its own work here when the app is made (its ``jobs.init_app``, warehouse's
habit), in the order create_app binds them: the sweep names none of them, so nothing at the bottom
of the house points up at an area. Each piece of work is safe to run twice and at once, and
returns what it did (a count, or a mapping of counts), which the sweep logs and returns by name.
"""

import logging
from collections.abc import Callable

from flask import Flask, current_app

from storefront.metrics import SWEEPS, measured_job

log = logging.getLogger(__name__)
REGISTRY = "storefront.sweep"


def every_sweep(app: Flask, name: str, work: Callable[[], object]) -> None:
    """Run ``work`` at every sweep, after the work registered before it; its result is reported as ``name``."""
    app.extensions.setdefault(REGISTRY, []).append((name, work))


@measured_job("sweep")
def sweep() -> dict:
    """One sweep: each area's work in turn. Raises what a piece raised, so that the job is retried;
    the work before it is done and safe to do again."""
    done = {name: work() for name, work in current_app.extensions.get(REGISTRY, [])}
    SWEEPS.inc()
    if any(done.values()):
        log.info("sweep: %s", ", ".join(f"{name} {value}" for name, value in done.items() if value))
    return done
