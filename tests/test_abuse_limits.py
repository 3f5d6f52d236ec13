"""Nobody hoards the stock: holds per visitor, and holds per address."""

from collections import Counter

import pytest
import requests

from storefront import ratelimit
from storefront.extensions import db
from tests.factories import make_product, visitor, units


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
    from tests.test_holds_race import race_over

    product_ids = [make_product(total=5).id for _ in range(8)]
    limited = {**settings, "MAX_HELD_UNITS_PER_VISITOR": "3"}
    servers = [live_server(limited, workers=1, threads=4) for _ in range(2)]
    answers = race_over(servers, [{"productId": product_id, "userId": visitor(7)} for product_id in product_ids])
    assert Counter(r.status_code for r in answers) == {201: 3, 409: 5}
    assert {r.json()["error"] for r in answers if r.status_code == 409} == {"hold_limit"}
    db.session.expire_all()
    assert sum(units(pid).held for pid in product_ids) == 3


def test_holds_past_the_rate_limit_get_429_with_retry_after(make_app, settings):
    app = make_app({**settings, "HOLD_RATE_LIMIT": "3/minute"})
    client = app.test_client()
    with app.app_context():
        # A Redis behind the app keeps counts between tests: this app's start from none.
        app.extensions["storefront.ratelimit"].reset()
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


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_without_redis_the_window_slides_in_the_database(make_app, settings, tmp_path, monkeypatch, database):
    """A sliding window counter, as Redis keeps it: the last window weighs as much as it overlaps."""
    from datetime import UTC, datetime

    import flask_migrate
    from limits import parse

    if database == "postgresql":
        app = make_app(settings)
    else:
        app = make_app({"SECRET_KEY": settings["SECRET_KEY"], "DATABASE_URL": f"sqlite:///{tmp_path}/rate.db",
                        "DEMO_PAYMENTS": "1"})
        with app.app_context():
            flask_migrate.upgrade()
    clock = [6000.0]  # the start of a minute
    monkeypatch.setattr(ratelimit, "utcnow", lambda: datetime.fromtimestamp(clock[0], UTC))
    limiter = ratelimit.DatabaseLimiter(parse("4/minute"))
    with app.app_context():
        limiter.reset()
        assert [limiter.allow("a")[0] for _ in range(5)] == [True] * 4 + [False]
        assert limiter.allow("b")[0] is True  # another address, its own budget
        clock[0] += 15
        assert limiter.allow("a") == (False, 45)  # until this window ends
        clock[0] += 60  # a quarter into the next: the last window's 6 still weigh 4.5
        assert limiter.allow("a")[0] is False
        clock[0] += 60 * 2  # long after: nothing weighs any more
        assert [limiter.allow("a")[0] for _ in range(5)] == [True] * 4 + [False]
        assert limiter.allow("c", factor=2)[0] is True and limiter.allow("a", factor=2)[0] is True


def test_without_redis_two_processes_share_one_rate_limit_and_one_login_count(settings, live_server, tmp_path):
    """Embedded mode (SQLite, no Redis) under gunicorn with two workers: 59 of 65 holds once passed a
    30/minute limit and 20 wrong passwords came before a 429, each worker counting apart."""
    embedded = {"SECRET_KEY": settings["SECRET_KEY"], "DATABASE_URL": f"sqlite:///{tmp_path}/two.db",
                "DEMO_PAYMENTS": "1", "HOLD_RATE_LIMIT": "6/minute", "ADMIN_PASSWORD": "a-long-admin-password"}
    import flask_migrate

    from storefront import create_app
    made = create_app(embedded)
    with made.app_context():
        flask_migrate.upgrade()
    # Two gunicorns on the one database: two processes for certain, taking requests in turn (the two
    # workers of one gunicorn may well leave every request to one of them).
    servers = [live_server(embedded, workers=1, threads=2), live_server(embedded, workers=1, threads=2)]
    answers = [requests.post(f"{servers[n % 2].url}/api/reservations", json={"productId": 999, "userId": visitor(n)},
                             timeout=10) for n in range(14)]
    assert Counter(answer.status_code for answer in answers) == {404: 6, 429: 8}
    assert len({answer.headers["X-Request-Id"][:16] for answer in answers}) == 2  # each process has its prefix
    guesses = [requests.get(f"{servers[n % 2].url}/admin/", auth=("admin", f"guess-{n}"), timeout=10).status_code
               for n in range(12)]
    assert guesses == [401] * 10 + [429] * 2, guesses


def test_an_ipv6_48_is_limited_as_a_whole(make_app, settings):
    """Three /64s of one /48: each has its own limit, and the /48 together IPV6_BLOCK_FACTOR times it."""
    app = make_app({**settings, "HOLD_RATE_LIMIT": "2/minute", "IPV6_BLOCK_FACTOR": "2",
                    "MAX_HELD_UNITS_PER_ADDRESS": "2"})
    client = app.test_client()
    with app.app_context():
        app.extensions["storefront.ratelimit"].reset()
        product = make_product(total=20)
        sixty_fours = ["2001:db8:7:1::5", "2001:db8:7:2::5", "2001:db8:7:3::5"]
        codes = [hold(client, product.id, visitor(f"{i}{k}"), environ_base={"REMOTE_ADDR": address}).status_code
                 for i, address in enumerate(sixty_fours) for k in range(2)]
        # The /48's rate: 4 a minute (2 × 2), and its held units: 4 (2 × 2).
        assert codes == [201, 201, 201, 201, 429, 429], codes
        other = hold(client, product.id, visitor("x"), environ_base={"REMOTE_ADDR": "2001:db8:8:1::5"})
        assert other.status_code == 201  # another /48
        app.extensions["storefront.ratelimit"].reset()
        held = hold(client, product.id, visitor("y"), environ_base={"REMOTE_ADDR": "2001:db8:7:4::5"})
        assert held.status_code == 409 and held.get_json()["per"] == "address", held.get_json()


def test_the_hold_rate_counts_a_whole_ipv6_64(make_app, settings):
    app = make_app({**settings, "HOLD_RATE_LIMIT": "2/minute", "IPV6_BLOCK_FACTOR": "0"})
    client = app.test_client()
    with app.app_context():
        app.extensions["storefront.ratelimit"].reset()
        product = make_product(total=20)
        codes = [hold(client, product.id, visitor(n), environ_base={"REMOTE_ADDR": f"2001:db8:9:1::{n + 1}"}).status_code
                 for n in range(3)]
        assert codes == [201, 201, 429]


def test_with_its_redis_down_the_rate_limit_still_holds(make_app, settings):
    """The hold rate is counted in the database (on PostgreSQL by the hold function itself): a Redis
    outage neither stops sales nor lifts the limit."""
    app = make_app({**settings, "HOLD_RATE_LIMIT": "1/minute", "REDIS_URL": "redis://127.0.0.1:9/0"})
    client = app.test_client()
    with app.app_context():
        app.extensions["storefront.ratelimit"].reset()
        product = make_product(total=5)
        answers = [hold(client, product.id, visitor(n)) for n in range(3)]
        assert [answer.status_code for answer in answers] == [201, 429, 429]
        assert int(answers[1].headers["Retry-After"]) > 0
        assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 4


def address_settings(settings, **more) -> dict:
    """The suite's settings with the address's hold limit as the contract sets it (20), not lifted."""
    lifted = {key: value for key, value in settings.items() if key != "MAX_HELD_UNITS_PER_ADDRESS"}
    return {**lifted, **more}


def held_from(address: str) -> int:
    from sqlalchemy import func, select

    from storefront.inventory.models import Hold

    db.session.expire_all()
    return db.session.execute(select(func.coalesce(func.sum(Hold.quantity), 0))
                              .where(Hold.client_address == address, Hold.status == "PENDING")).scalar_one()


def test_thirty_visitor_ids_from_one_address_stop_at_the_address_limit(make_app, settings):
    """The attack: a new visitor id per request, no cookie, form-encoded, from one address."""
    app = make_app(address_settings(settings))
    client = app.test_client()
    with app.app_context():
        first, second = make_product(total=40), make_product(total=40)
        answers = [client.post("/api/reservations", data={"productId": (first if n % 2 else second).id,
                                                          "userId": visitor(f"bot-{n}")})
                   for n in range(30)]
        assert [a.status_code for a in answers] == [201] * 20 + [409] * 10
        refusal = answers[-1].get_json()
        assert (refusal["error"], refusal["per"], refusal["limit"], refusal["held"]) == ("hold_limit", "address", 20, 20)
        assert held_from("127.0.0.1") == 20
        assert sum(client.get(f"/api/inventory/check/{p.id}").get_json()["available"] for p in (first, second)) == 60
        # Units, not holds: a bigger hold does not fit in what is left either.
        assert hold(client, first.id, visitor("bot-big"), 2).get_json()["per"] == "address"
        # The visitor's own limit still answers as the visitor's.
        other = {"REMOTE_ADDR": "192.0.2.44"}
        assert hold(client, first.id, visitor("one"), 5, environ_base=other).status_code == 201
        assert hold(client, second.id, visitor("one"), 5, environ_base=other).status_code == 201
        own = hold(client, make_product(total=5).id, visitor("one"), 1, environ_base=other).get_json()
        assert (own["error"], own["per"]) == ("hold_limit", "visitor")
        # A checkout counts against the same limit: the cart's line would take the address past it.
        client.post("/api/cart/items", json={"productId": first.id, "quantity": 1, "userId": visitor("bot-cart")})
        refused = client.post("/api/checkouts", json={"userId": visitor("bot-cart")})
        assert refused.status_code == 409 and refused.get_json()["per"] == "address"
        assert held_from("127.0.0.1") == 20


def test_a_cancelled_or_lapsed_hold_gives_its_units_back_to_the_address(make_app, settings):
    from tests.factories import lapse

    app = make_app(address_settings(settings, MAX_HELD_UNITS_PER_ADDRESS="3"))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=10)
        held = [hold(client, product.id, visitor(n)).get_json() for n in range(3)]
        assert hold(client, product.id, visitor(9)).status_code == 409
        client.delete(f"/api/reservations/{held[0]['reservationId']}?userId={visitor(0)}")
        lapse(held[1]["reservationId"])
        assert [hold(client, product.id, visitor(n)).status_code for n in (9, 10, 11)] == [201, 201, 409]


def test_addresses_behind_one_trusted_proxy_count_apart_and_ipv6_counts_by_its_64(make_app, settings):
    app = make_app(address_settings(settings, MAX_HELD_UNITS_PER_ADDRESS="2", TRUSTED_PROXY_COUNT="1"))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=20)

        def from_(forwarded, n):
            return hold(client, product.id, visitor(n), headers={"X-Forwarded-For": forwarded},
                        environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code  # the proxy's own address

        assert [from_("203.0.113.5", n) for n in range(3)] == [201, 201, 409]
        assert [from_("203.0.113.6", n) for n in range(3, 6)] == [201, 201, 409]
        # The client's own claim before the proxy's entry is not believed: the proxy's entry counts.
        assert from_("198.51.100.1, 203.0.113.5", 6) == 409
        # One IPv6 /64 is one household's network; the next /64 is another.
        assert [from_(f"2001:db8:aa:1::{n}", n) for n in range(10, 13)] == [201, 201, 409]
        assert from_("2001:db8:aa:2::1", 13) == 201
        assert held_from("2001:db8:aa:1::/64") == 2

    # Without a trusted proxy, X-Forwarded-For is the client's own say: ignored.
    direct = make_app(address_settings(settings, MAX_HELD_UNITS_PER_ADDRESS="2")).test_client()
    with app.app_context():
        other = make_product(total=20)
        answers = [direct.post("/api/reservations", json={"productId": other.id, "userId": visitor(f"x{n}")},
                               headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(3)]
        assert answers == [201, 201, 409]


def test_the_address_limit_holds_when_one_address_races_from_several_processes(app, settings, live_server):
    """Thirty visitor ids from one address at once, over three gunicorn processes and many products'
    buckets: the address's lock counts them one at a time, so exactly 20 are held. The race proves it
    ran across the three processes (each answer's request id names its process)."""
    from tests.test_holds_race import race_over

    product_ids = [make_product(total=40).id for _ in range(3)]
    servers = [live_server(address_settings(settings), workers=1, threads=10) for _ in range(3)]
    answers = race_over(servers, [{"productId": product_ids[n % 3], "userId": visitor(f"racer-{n}")}
                                  for n in range(30)])
    assert Counter(answer.status_code for answer in answers) == {201: 20, 409: 10}
    assert {answer.json().get("per") for answer in answers if answer.status_code == 409} == {"address"}
    assert held_from("127.0.0.1") == 20
    db.session.expire_all()
    assert sum(units(pid).held for pid in product_ids) == 20


def test_the_address_limit_holds_in_embedded_mode(tmp_path):
    import flask_migrate

    from storefront import create_app

    app = create_app({"MAX_HELD_UNITS_PER_ADDRESS": "4"}, instance_path=str(tmp_path / "instance"))
    client = app.test_client()
    with app.app_context():
        flask_migrate.upgrade()
        product = make_product(total=10)
        assert [hold(client, product.id, visitor(n)).status_code for n in range(6)] == [201] * 4 + [409] * 2
        db.session.remove()
        db.engine.dispose()
