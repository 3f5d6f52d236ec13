"""Many buyers, few units, several gunicorn processes: never oversold.

These run against gunicorn with several worker processes, so holds race across processes on
the real database, as they do in production; and each race proves it raced: the crowd is dealt
in turn to two gunicorns on the one database, each answer's request id names its process, and
two requests answered by different processes were in flight at the same moment. (One gunicorn
alone may leave a crowd to one of its workers: on a loaded machine, with the suite in two
processes, one worker answered all 80 requests of a race even with each worker's connections
capped.)
"""

import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import flask_migrate
import requests
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.inventory.models import Hold
from tests.factories import counters_against_holds, make_product, units, visitor

def _post_at_once(urls: list[str], bodies: list[dict], *, connect_first: bool) -> list[requests.Response]:
    """POST each body to its URL, all at once: the threads are released together by a barrier. Each
    answer carries when it was sent and answered (``sent_at``, ``answered_at``, monotonic seconds)."""
    start = threading.Barrier(len(bodies))

    def post(numbered):
        n, body = numbered
        with requests.Session() as session:
            if connect_first:
                session.get(urls[n].replace("/api/reservations", "/healthz"), timeout=30)
            start.wait()
            sent_at = time.monotonic()
            response = session.post(urls[n], json=body, timeout=60)
            response.sent_at, response.answered_at = sent_at, time.monotonic()
            return response

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, enumerate(bodies)))


def race(url: str, bodies: list[dict]) -> list[requests.Response]:
    """POST every body to one server at once."""
    return _post_at_once([f"{url}/api/reservations"] * len(bodies), bodies, connect_first=False)


def race_over(servers, bodies: list[dict]) -> list[requests.Response]:
    """:func:`race` with the bodies dealt in turn to several gunicorns on one database: the race spans
    as many processes as there are servers whatever the load (one gunicorn's workers may leave a small
    crowd to one of them), and the answers' request ids (each process's own prefix) show it did."""
    urls = [f"{servers[n % len(servers)].url}/api/reservations" for n in range(len(bodies))]
    responses = _post_at_once(urls, bodies, connect_first=True)
    by_process = {}
    for response in responses:
        by_process.setdefault(response.headers["X-Request-Id"][:16], []).append(response)
    assert len(by_process) >= len(servers), f"{len(by_process)} processes answered, of {len(servers)} servers"
    # And it raced: two requests answered by different processes were in flight at the same moment.
    first, second, *_ = by_process.values()
    assert any(a.sent_at < b.answered_at and b.sent_at < a.answered_at for a in first for b in second)
    return responses


def holds_of(product_id: int) -> list:
    db.session.expire_all()
    return db.session.execute(select(Hold).where(Hold.product_id == product_id)).scalars().all()


def test_200_visitors_racing_for_5_units_over_4_buckets_get_exactly_5_holds(app, settings, live_server):
    product = make_product(total=5, buckets=4)
    # Two gunicorns, the crowd dealt in turn: four processes on one database, two of them surely racing.
    servers = [live_server(settings, workers=2, threads=8) for _ in range(2)]

    responses = race_over(servers, [{"productId": product.id, "userId": visitor(n)} for n in range(200)])

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 5, 409: 195}
    assert all(r.json()["available"] == 0 for r in responses if r.status_code == 409)
    held = holds_of(product.id)
    assert len(held) == 5
    assert len({h.user_id for h in held}) == 5
    assert units(product.id).held == 5
    assert counters_against_holds(product.id) == []


def test_one_visitor_pressing_buy_20_times_at_once_gets_one_hold(app, settings, live_server):
    product = make_product(total=5)
    server = live_server(settings, workers=2, threads=8)

    responses = race(server.url, [{"productId": product.id, "userId": visitor(1)}] * 20)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 200: 19}
    assert len({r.json()["reservationId"] for r in responses}) == 1
    assert len(holds_of(product.id)) == 1
    assert units(product.id).held == 1


def test_mixed_quantities_never_oversell(app, settings, live_server):
    product = make_product(total=7, buckets=4)  # 2, 2, 2, 1: a hold of 3 needs units gathered
    servers = [live_server(settings, workers=2, threads=2) for _ in range(2)]

    bodies = [{"productId": product.id, "userId": visitor(n), "quantity": 1 + n % 3} for n in range(60)]
    responses = race_over(servers, bodies)

    granted = sum(r.json()["quantity"] for r in responses if r.status_code == 201)
    assert granted <= 7
    db.session.expire_all()
    total_held = db.session.execute(
        select(func.sum(Hold.quantity)).where(Hold.product_id == product.id)
    ).scalar_one()
    assert total_held == granted == units(product.id).held
    assert counters_against_holds(product.id) == []
    # Whatever was refused was refused for want of stock, never for a crash.
    assert {r.status_code for r in responses} <= {201, 409}
    assert 7 - granted < 3  # it stops only when the smallest leftover request cannot fit


def test_embedded_sqlite_is_race_free_across_processes_too(tmp_path, live_server):
    from storefront import create_app

    instance = tmp_path / "instance"
    database_url = f"sqlite:///{instance / 'storefront.sqlite3'}"
    settings = {"DATABASE_URL": database_url, "SECRET_KEY": secrets.token_urlsafe(32), "HOLD_RATE_LIMIT": "100000/minute"}
    app = create_app(settings, instance_path=str(instance))
    with app.app_context():
        flask_migrate.upgrade()
        product = make_product(total=3)
        product_id = product.id
        servers = [live_server(settings, workers=2, threads=1) for _ in range(2)]

        responses = race_over(servers, [{"productId": product_id, "userId": visitor(n)} for n in range(40)])

        assert Counter(r.status_code for r in responses) == {201: 3, 409: 37}
        assert len(holds_of(product_id)) == 3
        db.session.remove()
        db.engine.dispose()
