"""One clock (issue 41): the database's clock decides a drop's start, the line's ranking and seed,
passes and holds, on every host. A web host and a worker run under libfaketime (Debian's faketime)
five minutes ahead of PostgreSQL open nothing early: no seed shown, no place ranked or admitted, no
hold taken before the database's start. The hosts' own clocks are shown to be off (their Date header)."""

import glob
import subprocess
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests
from sqlalchemy import select

from storefront.clock import utcnow
from storefront.inventory.models import Queue, QueueEntry
from storefront.extensions import db
from tests.factories import make_product, visitor
from tests.test_queue import NO_DOOR, queued_product

AHEAD_SECONDS = 300


def faketime_env(seconds: int, build: Path) -> dict:
    """A process's environment under libfaketime, ``seconds`` ahead (behind when negative), its monotonic clock left true (a
    faked one hangs every timed lock wait), with tests/clock_nanosleep_fix.c preloaded first."""
    libraries = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
    assert libraries, "libfaketime is not installed (scripts/bootstrap --services installs Debian's faketime)"
    fix = build / "clock_nanosleep_fix.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(fix), str(Path(__file__).with_name("clock_nanosleep_fix.c")),
                    "-ldl"], check=True)
    return {"LD_PRELOAD": f"{fix} {libraries[0]}", "FAKETIME": f"{seconds:+d}", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_hosts_whose_clocks_run_five_minutes_fast_open_nothing_before_the_databases_start(
        make_app, settings, live_server, worker, tmp_path):
    shop_settings = {**settings, **NO_DOOR, "SWEEP_INTERVAL_SECONDS": "1"}
    app = make_app(shop_settings)
    with app.app_context():
        product = queued_product(total=2, starts_in=timedelta(minutes=2))
        plain = make_product(total=3, starts_at=(utcnow() + timedelta(minutes=2)).replace(microsecond=0))
        fast = {**shop_settings, **faketime_env(AHEAD_SECONDS, tmp_path)}
        server = live_server(fast)
        worker(fast)
        for n in range(1, 4):
            joined = requests.post(f"{server.url}/api/queue/{product.id}/entries", json={"userId": visitor(n)},
                                   timeout=10)
            assert joined.status_code == 201 and joined.json()["position"] is None, joined.text
        line = requests.get(f"{server.url}/api/queue/{product.id}", timeout=10)
        host_clock = parsedate_to_datetime(line.headers["Date"])
        assert (host_clock - utcnow()).total_seconds() > AHEAD_SECONDS - 30, "the web host's clock is not off"
        assert line.json()["state"] == "open" and line.json()["seed"] is None

        stock = requests.get(f"{server.url}/api/inventory/check/{plain.id}", timeout=10).json()
        assert stock["onSale"] is False
        hold = requests.post(f"{server.url}/api/reservations", json={"productId": plain.id, "userId": visitor(9)},
                             timeout=10)
        assert hold.status_code == 409 and hold.json()["error"] == "not_on_sale", hold.text
        cart = requests.post(f"{server.url}/api/cart/items", json={"productId": plain.id, "userId": visitor(9)},
                             timeout=10)
        assert cart.status_code == 200
        checkout = requests.post(f"{server.url}/api/checkouts", json={"userId": visitor(9)}, timeout=10)
        assert checkout.status_code == 409 and checkout.json()["error"] == "not_on_sale"
        listed = requests.get(f"{server.url}/api/queue/{product.id}/entries.csv", timeout=10)
        assert listed.status_code == 409 and listed.json()["error"] == "not_started"

        time.sleep(3)  # three of the worker's sweeps, each of which admits places once its clock says the start came
        db.session.expire_all()
        room = db.session.execute(select(Queue).where(Queue.product_id == product.id)).scalar_one()
        assert room.ranked_at is None
        assert db.session.execute(select(QueueEntry.id).where(QueueEntry.product_id == product.id,
                                                              QueueEntry.position.is_not(None))).first() is None
