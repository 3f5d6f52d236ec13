"""Nobody hoards the stock: holds per visitor, and holds per address."""

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from storefront.catalog.models import Product
from storefront import ratelimit
from storefront.extensions import db
from tests.factories import make_product, visitor


def hold(client, product_id, user, quantity=1, **kwargs):
    return client.post("/api/reservations", json={"productId": product_id, "userId": user, "quantity": quantity},
                       **kwargs)


def test_a_visitor_may_hold_at_most_the_limit_across_products(make_app, settings):
    app = make_app({**settings, "MAX_HELD_UNITS_PER_VISITOR": "6"})
    client = app.test_client()
    with app.app_context():
        first, second, third = (make_product(total=10) for _ in range(3))
        assert hold(client, first.id, visitor(1), 4).status_code == 201
        assert hold(client, second.id, visitor(1), 2).status_code == 201
        refused = hold(client, third.id, visitor(1), 1)
        assert refused.status_code == 409
        assert refused.get_json()["error"] == "hold_limit"
        assert (refused.get_json()["held"], refused.get_json()["limit"]) == (6, 6)
        assert client.get(f"/api/inventory/check/{third.id}").get_json()["available"] == 10
        # Their existing hold still comes back; others are not limited by this visitor.
        assert hold(client, first.id, visitor(1)).status_code == 200
        assert hold(client, third.id, visitor(2), 5).status_code == 201


def test_the_visitor_limit_holds_when_one_visitor_races_across_products(app, settings, live_server):
    product_ids = [make_product(total=5).id for _ in range(8)]
    server = live_server({**settings, "MAX_HELD_UNITS_PER_VISITOR": "3"}, workers=2, threads=8)

    start = threading.Barrier(len(product_ids))

    def post(product_id):
        with requests.Session() as session:
            session.get(f"{server.url}/healthz", timeout=30)  # connected before the start
            start.wait()
            return session.post(f"{server.url}/api/reservations", timeout=30,
                                json={"productId": product_id, "userId": visitor(7)})

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, product_ids))
    assert Counter(r.status_code for r in answers) == {201: 3, 409: 5}
    assert {r.json()["error"] for r in answers if r.status_code == 409} == {"hold_limit"}
    db.session.expire_all()
    assert sum(db.session.get(Product, pid).held_units for pid in product_ids) == 3


def test_holds_past_the_rate_limit_get_429_with_retry_after(make_app, settings):
    app = make_app({**settings, "HOLD_RATE_LIMIT": "3/minute"})
    client = app.test_client()
    with app.app_context():
        ratelimit.reset(app)
        product = make_product(total=10)
        answers = [hold(client, product.id, visitor(n)) for n in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        limited = answers[-1]
        assert limited.get_json()["error"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 7
        htmx = hold(client, product.id, visitor(9), headers={"HX-Request": "true"})
        assert htmx.status_code == 429 and 'data-error="rate_limited"' in htmx.get_data(as_text=True)
        # Another address has its own budget.
        other = hold(client, product.id, visitor(10), environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert other.status_code == 201


def test_the_rate_limit_holds_across_processes_with_redis(settings, redis_server, live_server):
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    server = live_server({**settings, "HOLD_RATE_LIMIT": "5/minute", "REDIS_URL": redis_server.url},
                         workers=3, threads=2)
    answers = [requests.post(f"{server.url}/api/reservations", json={"productId": 1, "userId": visitor(n)},
                             timeout=10).status_code for n in range(12)]
    # Unknown product: 404s, but each counts against the address's budget, whichever worker answered.
    assert Counter(answers) == {404: 5, 429: 7}


def test_the_in_process_window_slides_and_forgets_stale_addresses(monkeypatch):
    from limits import parse

    clock = [6000.0]  # the start of a minute
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    limiter = ratelimit.ProcessLimiter(parse("4/minute"))
    assert [limiter.allow("a")[0] for _ in range(5)] == [True] * 4 + [False]
    assert limiter.allow("b")[0] is True  # another address, its own budget
    clock[0] += 60 + 15  # a quarter into the next minute: the last one still weighs 3 of 4
    assert limiter.allow("a") == (True, 0)
    assert limiter.allow("a") == (False, 45)
    clock[0] += 45 + 60 * 2  # long after: nothing weighs any more
    assert [limiter.allow("a")[0] for _ in range(5)] == [True] * 4 + [False]


def test_with_its_redis_down_the_rate_limit_lets_holds_through(make_app, settings):
    app = make_app({**settings, "HOLD_RATE_LIMIT": "1/minute", "REDIS_URL": "redis://127.0.0.1:9/0"})
    client = app.test_client()

    def let_through() -> float:
        found = re.search(r"^storefront_rate_limiter_unavailable_total ([\d.]+)$",
                          client.get("/metrics").get_data(as_text=True), re.M)
        return float(found.group(1)) if found else 0.0

    with app.app_context():
        product = make_product(total=5)
        before = let_through()
        answers = [hold(client, product.id, visitor(n)).status_code for n in range(3)]
        assert answers == [201, 201, 201]  # fails open: a Redis outage does not stop sales
        assert let_through() - before == 3
