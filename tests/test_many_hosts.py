"""Many hosts on one database (issue 46): a host's connections are its threads, and a drop rehearsed
end to end on the whole stack (bench/rehearsal.py, small), its invariants asserted.

The rehearsal runs the stack scripts/stack.py runs (two gunicorn hosts behind nginx, two workers,
PostgreSQL through PgBouncer in transaction mode, Redis, Kafka) with localstripe as Stripe, a crowd of
people and scripts played by Locust, and a web host killed, PostgreSQL stopped for 5 s and a worker
killed in the middle: holds race across the hosts, every payment ends a sale or a refund, and nothing
answers 5xx outside the faults. Its figures are a benchmark's, never asserted here.
"""

import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from tests.conftest import REPO
from tests.factories import DELIVERY, make_product, visitor

THREADS = 4


def test_a_host_holds_one_database_connection_a_thread(app, postgres, settings, live_server):
    """Pages, stock checks, holds (JSON and the payment form), reads of a hold, a demo payment, carts and
    checkouts from sixteen clients at once on one gunicorn process of four threads: PostgreSQL never
    sees more than four connections from it (the hot path borrows the pool's, as every request does)."""
    database = settings["DATABASE_URL"].rsplit("/", 1)[1]
    name = f"storefront-{uuid.uuid4().hex[:8]}"
    host = live_server({**settings, "PGAPPNAME": name}, workers=1, threads=THREADS)
    products = [make_product(total=1000).id for _ in range(3)]
    most, watching = [0], threading.Event()

    def watch():
        with psycopg.connect(postgres.dsn(database), autocommit=True) as conn:
            while not watching.is_set():
                count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                     (name,)).fetchone()[0]
                most[0] = max(most[0], count)
                time.sleep(0.01)

    def shopper(n):
        session, product = requests.Session(), products[n % len(products)]
        me = {"X-Visitor-Id": visitor(n)}
        statuses = [session.get(f"{host.url}/", timeout=30).status_code,
                    session.get(f"{host.url}/products/{product}", timeout=30).status_code,
                    session.get(f"{host.url}/api/inventory/check/{product}", timeout=30).status_code]
        held = session.post(f"{host.url}/api/reservations", json={"productId": product, "userId": visitor(n)},
                            timeout=30)
        hold_id = held.json()["reservationId"]
        statuses += [held.status_code, session.get(f"{host.url}/api/reservations/{hold_id}", headers=me,
                                                   timeout=30).status_code]
        paid = session.post(f"{host.url}/reservations/{hold_id}/demo-payment", headers={**me, "HX-Request": "true"},
                            data={**DELIVERY, "userId": visitor(n)}, timeout=30)
        statuses.append(paid.status_code)
        other = products[(n + 1) % len(products)]
        statuses.append(session.post(f"{host.url}/api/cart/items", json={"productId": other, "quantity": 1,
                                                                          "userId": visitor(n)}, timeout=30).status_code)
        statuses.append(session.post(f"{host.url}/api/checkouts", json={"userId": visitor(n)}, headers=me,
                                     timeout=30).status_code)
        statuses.append(session.get(f"{host.url}/cart", headers=me, timeout=30).status_code)
        return statuses

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = [status for answered in pool.map(shopper, range(96)) for status in answered]
    finally:
        watching.set()
        watcher.join()
    assert set(statuses) <= {200, 201}, {status: statuses.count(status) for status in set(statuses)}
    assert 1 <= most[0] <= THREADS, most[0]


def test_a_small_rehearsal_with_faults_loses_nothing(tmp_path):
    """Two hosts behind nginx, two workers, PgBouncer: 300 arrivals for 20 units, with a host killed,
    PostgreSQL down for 5 s and a worker killed while they hold and pay."""
    report = tmp_path / "report.json"
    played = subprocess.run(
        [sys.executable, "-m", "bench.rehearsal", "--units", "20", "--arrivals", "300", "--lead", "6", "--after", "6",
         "--lanes", "40", "--hold-seconds", "15", "--pass-seconds", "10", "--faults", "--faults-at", "2,8,14",
         "--max-seconds", "240", "--no-reference", "--json", str(report), "--picture", str(tmp_path / "timeline.png")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
    figures = json.loads(report.read_text())
    said = played.stdout[-4000:]
    assert figures["units_sold"] > 0 and figures["oversold"] == 0 and figures["counters_agree"], said
    assert figures["payments_unsettled"] == [] and figures["sold_without_payment"] == [], said
    assert figures["payments_sold"] == figures["units_sold"], said
    assert figures["payments_sold"] + figures["payments_refunded"] == figures["payments_succeeded"], said
    assert figures["failed_outside_faults"] == 0 and figures["crowd_errors"] == [], said
    assert [fault["fault"].split(" (")[0].split(" for")[0] for fault in figures["faults"]] == [
        "a web host killed", "PostgreSQL stopped", "a worker killed"], said
    assert figures["routes"]["hold"]["statuses"].get("201", 0) >= figures["units_sold"], said
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
