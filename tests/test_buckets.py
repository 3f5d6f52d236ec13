"""A product's stock in several bucket rows (issue 20): holds on one product take units from
different rows, give them back where they came from, and never oversell; a unit left in any
bucket is still sold; every reader sees the product's exact total.

The rules run on PostgreSQL in storefront/inventory/sql/place_hold_v9.sql (the usual hold) and
in the grant step, inventory/grants.py + inventory/stock.py (under the product's lock, and SQLite's only way):
tests that do not need several buckets run on both databases."""

import re
import threading
import time
import uuid
from collections import Counter

import flask_migrate
import psycopg
import pytest
from sqlalchemy import select, text

from scripts.services import PostgresServer
from storefront import create_app
from storefront.extensions import db
from storefront.inventory.models import Hold, StockBucket
from storefront.inventory.stock import _STOCK_OF_ON_POSTGRESQL, BelowCommitted, bucket_levels, set_total
from tests.conftest import TEST_SECRET_KEY
from tests.factories import counters_against_holds, lapse, make_product, visitor, units
from tests.test_holds_race import race


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, app, embedded_app):
    """The app on the suite's PostgreSQL, then the embedded one on SQLite."""
    chosen = app if request.param == "postgresql" else embedded_app
    with chosen.app_context():
        yield chosen


def hold(client, product_id, user, quantity=1):
    return client.post("/api/reservations", json={"productId": product_id, "userId": visitor(user),
                                                  "quantity": quantity})


def buckets_of(product_id: int) -> list:
    db.session.expire_all()
    return bucket_levels(db.session.connection(), product_id)


def hold_row(reservation_id: str) -> Hold:
    db.session.expire_all()
    return db.session.get(Hold, uuid.UUID(reservation_id))


def available(client, product_id) -> int:
    return client.get(f"/api/inventory/check/{product_id}").get_json()["available"]


_LOCK_BUCKET = text("SELECT 1 FROM stock_buckets WHERE product_id = :p AND bucket = :b FOR UPDATE")


def test_a_product_is_split_into_buckets_by_its_size_and_readers_see_the_sum(app, client):
    small, large = make_product(total=3), make_product(total=1000)
    assert [(b.total, b.held, b.sold) for b in buckets_of(small.id)] == [(1, 0, 0)] * 3
    spread = buckets_of(large.id)
    assert len(spread) == 64 and {b.total for b in spread} == {15, 16} and sum(b.total for b in spread) == 1000
    assert client.get(f"/api/inventory/check/{large.id}").get_json() == {
        "productId": large.id, "available": 1000, "total": 1000, "inStock": True}
    assert units(large.id).total == 1000


def test_sqlite_keeps_one_bucket(embedded_app):
    with embedded_app.app_context():
        product = make_product(total=1000)
        assert [(b.bucket, b.total) for b in buckets_of(product.id)] == [(0, 1000)]


def test_units_go_back_to_the_bucket_they_came_from(app, client):
    product = make_product(total=6, buckets=4)
    placed = [hold(client, product.id, n).get_json() for n in range(4)]
    taken = Counter(hold_row(p["reservationId"]).bucket for p in placed)
    assert sum(taken.values()) == 4 and counters_against_holds(product.id) == []

    # Bucket 0 has room for two of the four: two came from other buckets, and go back there.
    cancelled, lapsed = [(n, p) for n, p in enumerate(placed) if hold_row(p["reservationId"]).bucket != 0][:2]
    assert client.delete(f"/api/reservations/{cancelled[1]['reservationId']}",
                         headers={"X-Visitor-Id": visitor(cancelled[0])}).status_code == 200
    assert counters_against_holds(product.id) == []
    lapse(lapsed[1]["reservationId"])
    assert hold(client, product.id, 9, quantity=4).status_code == 201  # needs the lapsed unit back
    assert hold_row(lapsed[1]["reservationId"]).status == "EXPIRED"
    assert counters_against_holds(product.id) == []
    assert sum(b.total for b in buckets_of(product.id)) == 6
    assert available(client, product.id) == 0


def test_units_stranded_in_several_buckets_are_gathered_for_one_hold(shop):
    client = shop.test_client()
    product = make_product(total=4, buckets=4 if db.engine.dialect.name == "postgresql" else None)
    response = hold(client, product.id, 1, quantity=3)  # no bucket has 3: they are moved into one
    assert response.status_code == 201, response.get_json()
    assert counters_against_holds(product.id) == []
    assert sum(b.total for b in buckets_of(product.id)) == 4
    # The last unit, wherever it was left, goes to the next shopper.
    assert hold(client, product.id, 2).status_code == 201
    refused = hold(client, product.id, 3)
    assert refused.status_code == 409 and refused.get_json()["available"] == 0
    assert counters_against_holds(product.id) == []


def test_the_last_unit_in_any_bucket_is_found_whichever_buckets_are_empty(app, settings, live_server):
    product = make_product(total=4, buckets=4)
    with db.engine.begin() as conn:  # three buckets emptied by sales made earlier
        conn.execute(text("UPDATE stock_buckets SET sold_units = total_units WHERE product_id = :p AND bucket < 3"),
                     {"p": product.id})
    server = live_server(settings, workers=2, threads=4)
    responses = race(server.url, [{"productId": product.id, "userId": visitor(n)} for n in range(30)])
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 29}
    created = next(r.json() for r in responses if r.status_code == 201)
    assert hold_row(created["reservationId"]).bucket == 3


def test_a_hold_takes_another_bucket_rather_than_wait_for_a_locked_one(app, client):
    product = make_product(total=2, buckets=2)
    answers = []
    with db.engine.connect() as other:  # a transaction in the middle of taking bucket 0
        other.execute(_LOCK_BUCKET, {"p": product.id, "b": 0})
        holder = threading.Thread(target=lambda: answers.append(hold(app.test_client(), product.id, 1)))
        holder.start()
        holder.join(timeout=15)
        waited = holder.is_alive()
        other.rollback()  # frees bucket 0 either way, so that a hold that waited ends and the test fails
        holder.join(timeout=30)
    assert not waited, "the hold waited for the locked bucket instead of taking the free one"
    assert answers[0].status_code == 201
    assert hold_row(answers[0].get_json()["reservationId"]).bucket == 1
    assert counters_against_holds(product.id) == []


def test_a_hold_waits_for_the_only_bucket_with_units_and_takes_it_once_free(app, client):
    product = make_product(total=2, buckets=2)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE stock_buckets SET sold_units = 1 WHERE product_id = :p AND bucket = 1"),
                     {"p": product.id})
    answers = []
    with db.engine.connect() as other:
        other.execute(_LOCK_BUCKET, {"p": product.id, "b": 0})
        waiting = threading.Thread(target=lambda: answers.append(hold(app.test_client(), product.id, 1)))
        waiting.start()
        with db.engine.connect() as watcher:
            for _ in range(300):  # until the hold is seen waiting for that row's lock
                if watcher.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                        " AND query LIKE '%storefront_place_hold%'")).scalar():
                    break
                watcher.rollback()
                time.sleep(0.05)
            else:
                pytest.fail("the hold never waited for the locked bucket")
        assert answers == []
        other.rollback()
        waiting.join(timeout=30)
    assert answers[0].status_code == 201
    assert hold_row(answers[0].get_json()["reservationId"]).bucket == 0
    assert [(b.held, b.sold) for b in buckets_of(product.id)] == [(1, 0), (0, 1)]


def test_lapsed_holds_units_are_taken_by_the_next_hold_without_a_sweep(shop):
    client = shop.test_client()
    product = make_product(total=3, buckets=3 if db.engine.dialect.name == "postgresql" else None)
    placed = [hold(client, product.id, n).get_json() for n in range(3)]
    for one in placed:
        lapse(one["reservationId"])
    assert available(client, product.id) == 3
    response = hold(client, product.id, 7, quantity=3)
    assert response.status_code == 201, response.get_json()
    assert {hold_row(one["reservationId"]).status for one in placed} == {"EXPIRED"}
    assert counters_against_holds(product.id) == []


def test_the_owners_lapsed_hold_gives_way_to_their_new_one(shop):
    client = shop.test_client()
    product = make_product(total=2)
    first = hold(client, product.id, 1).get_json()
    lapse(first["reservationId"])
    again = hold(client, product.id, 1)
    assert again.status_code == 201
    assert again.get_json()["reservationId"] != first["reservationId"]
    assert hold_row(first["reservationId"]).status == "EXPIRED"
    assert counters_against_holds(product.id) == []


def test_stock_set_spreads_the_total_and_never_goes_below_sold_and_held(shop):
    client = shop.test_client()
    product = make_product(total=4, buckets=4 if db.engine.dialect.name == "postgresql" else None)
    placed = [hold(client, product.id, n).get_json() for n in range(3)]
    with pytest.raises(BelowCommitted) as refused, db.engine.begin() as conn:
        set_total(conn, product.id, 2)
    assert (refused.value.sold, refused.value.held) == (0, 3)
    assert sum(b.total for b in buckets_of(product.id)) == 4  # nothing changed

    with db.engine.begin() as conn:
        stock = set_total(conn, product.id, 40)
    assert (stock.total, stock.available) == (40, 37)
    levels = buckets_of(product.id)
    expected = 40 if db.engine.dialect.name == "postgresql" else 1  # one per unit, up to 64
    assert len(levels) == expected and sum(b.total for b in levels) == 40
    free = [b.free for b in levels]
    assert max(free) - min(free) <= 1  # the free units spread evenly
    assert all(b.total >= b.held + b.sold for b in levels)
    assert counters_against_holds(product.id) == []
    assert {hold_row(p["reservationId"]).status for p in placed} == {"PENDING"}


def test_no_bucket_can_be_oversold_whatever_the_code_does(app):
    product = make_product(total=2, buckets=2)
    with pytest.raises(Exception, match="never_oversold"):
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE stock_buckets SET held_units = 2 WHERE product_id = :p AND bucket = 0"),
                         {"p": product.id})
    assert db.session.execute(select(StockBucket.held_units).where(StockBucket.product_id == product.id)
                              ).scalars().all() == [0, 0]


def add_holds(conn, product_id: int, prefix: str, status: str, count: int) -> None:
    """``count`` holds made straight in the table (the counters are not the point here), each
    from an address of its own, as a crowd's are (one address holds few: MAX_HELD_UNITS_PER_ADDRESS)."""
    conn.execute(
        "INSERT INTO holds (id, product_id, bucket, user_id, browser_id, client_address, quantity, amount,"
        " currency, status, expires_at, created_at, updated_at, intent_checks)"
        " SELECT gen_random_uuid(), %s, 0, %s || n, '', '10.' || (n / 65536) || '.' || (n / 256 %% 256) || '.'"
        " || (n %% 256), 1, 2500, 'usd', %s,"
        " now() + interval '10 minutes', now(), now(), 0 FROM generate_series(1, %s) AS n",
        (product_id, f"{prefix}-", status, count))


def explained(conn, plans: list) -> None:
    """From now on the connection's statements, and those its functions run, log their plans
    (generic ones, as a long-lived connection ends up with) with the buffers they read."""
    conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting in ("plan_cache_mode = force_generic_plan", "client_min_messages = log",
                    "auto_explain.log_nested_statements = on", "auto_explain.log_analyze = on",
                    "auto_explain.log_buffers = on", "auto_explain.log_timing = off"):
        conn.execute(f"SET {setting}")


def test_a_connection_that_planned_its_holds_on_a_quiet_shop_still_reads_only_the_visitors_holds(app):
    """A pooled connection keeps the plans it made for the hold function's statements. Planned
    while few holds were PENDING (before a drop, or just after a vacuum), the look at a visitor's
    own PENDING holds could take the product-expiry index and read all of it: every PENDING
    hold read on every hold, as the drop filled the table (150-250 holds a second instead of
    thousands). It must read the visitor's entries alone, however many holds came since."""
    product, elsewhere = make_product(total=100), make_product(total=100_000)
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    plans = []
    with psycopg.connect(url, autocommit=True) as conn:
        add_holds(conn, elsewhere.id, "earlier", "COMPLETED", 5_000)
        conn.execute("VACUUM ANALYZE holds")  # a quiet shop's statistics: holds, none of them PENDING
        explained(conn, plans)
        place = ("SELECT outcome FROM storefront_place_hold(gen_random_uuid(), %s, %s, '', '127.0.0.1', NULL, 1, 600, 10, 1000000, 0, 1, NULL, NULL, 0, 0, 0, 0)")
        assert conn.execute(place, (product.id, visitor("planned"))).fetchone()[0] == "created"  # plans made, kept

        # The drop: 20,000 PENDING holds on another product, the statistics untouched.
        add_holds(conn, elsewhere.id, "crowd", "PENDING", 20_000)
        conn.execute("SET auto_explain.log_min_duration = 0")
        assert conn.execute(place, (product.id, visitor("after-the-crowd"))).fetchone()[0] == "created"
        conn.execute("SET auto_explain.log_min_duration = -1")
        # The lapse lookups, which name the expiry, still take the index made for them.
        lapsed = conn.execute("EXPLAIN SELECT sum(quantity) FROM holds WHERE product_id = %s AND status = 'PENDING'"
                              " AND expires_at <= now()", (elsewhere.id,)).fetchall()
        assert "ix_holds_pending_product_expiry" in " ".join(line for line, in lapsed), lapsed
    for look in ("FROM holds WHERE user_id = p_visitor AND status = 'PENDING'",
                 "FROM holds WHERE client_address = p_address AND status = 'PENDING'"):
        looks = [plan for plan in plans if look in plan]
        assert looks, plans
        buffers = [int(found) for found in re.findall(r"shared hit=(\d+)", looks[0])]
        assert "ix_holds_pending_product_expiry" not in looks[0] and max(buffers) < 100, looks[0]


def test_the_holds_statistics_follow_a_drop_and_connections_that_planned_on_a_quiet_shop_plan_again():
    """Plans made while the shop was quiet are kept until the holds table's statistics change, and
    with them a drop's hot statements could read every PENDING hold on every call (on a sold-out
    product, its whole crowd of live holds). A shop with 100,000 finished holds would get new
    statistics after 10,050 changes by PostgreSQL's defaults; migration 0016 asks for 500. Its
    own server here, analysing every second rather than every minute (autovacuum_naptime)."""
    with PostgresServer() as server:
        server.sql("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        server.sql("SELECT pg_reload_conf()")
        app = create_app({"DATABASE_URL": server.url(), "SECRET_KEY": TEST_SECRET_KEY, "DEMO_PAYMENTS": "1"})
        with app.app_context():
            flask_migrate.upgrade()
            product, sold_out, past = (make_product(total=total).id for total in (100, 1, 10))
            url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            db.session.remove()
            db.engine.dispose()
        place = "SELECT outcome FROM storefront_place_hold(gen_random_uuid(), %s, %s, '', '127.0.0.1', NULL, 1, 600, 10, 1000000, 0, 1, NULL, NULL, 0, 0, 0, 0)"
        plans = []
        with psycopg.connect(url, autocommit=True) as conn:
            add_holds(conn, past, "history", "COMPLETED", 100_000)
            assert conn.execute(place, (sold_out, visitor("the-one-buyer"))).fetchone()[0] == "created"
            conn.execute("VACUUM ANALYZE holds")

            def hold_refusal_and_stock_check(n):
                assert conn.execute(place, (product, visitor(f"shopper-{n}"))).fetchone()[0] == "created"
                assert conn.execute(place, (sold_out, visitor(f"late-{n}"))).fetchone()[0] == "out_of_stock"
                assert conn.execute(_STOCK_OF_ON_POSTGRESQL, {"product": sold_out}, prepare=True).fetchone()

            explained(conn, plans)
            for n in range(6):  # the plans a quiet shop gives, generic and kept
                hold_refusal_and_stock_check(n)

            # The drop: 5,000 live holds on the sold-out product (the counters are not the point).
            add_holds(conn, sold_out, "crowd", "PENDING", 5_000)
            crowd_at = conn.execute("SELECT now()").fetchone()[0]
            deadline = time.monotonic() + 60
            while not conn.execute("SELECT last_autoanalyze > %s FROM pg_stat_user_tables WHERE relname = 'holds'",
                                   (crowd_at,)).fetchone()[0]:
                assert time.monotonic() < deadline, "autovacuum never analysed the holds table after the crowd"
                time.sleep(0.5)

            plans.clear()
            conn.execute("SET auto_explain.log_min_duration = 0")
            hold_refusal_and_stock_check("after")
            conn.execute("SET auto_explain.log_min_duration = -1")
    reads = {re.sub(r"\s+", " ", plan.split("Query Text:")[1])[:70]: max(map(int, re.findall(r"shared hit=(\d+)", plan)))
             for plan in plans if "FROM holds" in plan and "shared hit=" in plan}
    assert len(reads) >= 4, plans  # the visitor's holds, the lapsed ones, the refusal's own, the stock check
    assert max(reads.values()) < 20, reads
