"""Money is never kept without a sale, however the shop learns of a payment.

On localstripe (stateful): payments whose webhook never comes are settled by
reconciliation or by the shopper's return; a forged return changes nothing;
Stripe unreachable means "ask again", never "unpaid". On the full stack: jobs
lost with an emptied Redis, and a PostgreSQL restart during traffic.
"""

import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from redis import Redis
from sqlalchemy import select, update

from scripts.services import PostgresServer, RedisServer
from storefront import create_app
from storefront.clock import utcnow
from storefront.events.kafka import consumer_lag
from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.payments.models import PaymentEvent
from tests.factories import TEST_WEBHOOK_SECRET, intent_event, lapse, make_product, stripe_signature, visitor
from tests.test_payments_stripe import HTMX, Shopper, hold_fragment, stored_hold, stripe_settings


def sweep():
    from storefront.sweep import sweep

    return sweep()


def held_and_paid(client, shopper, product, user=1):
    """A hold whose PaymentIntent the shopper paid on localstripe, with no webhook sent."""
    reservation_id, _ = hold_fragment(client, product, user)
    intent_id = stored_hold(reservation_id).payment_intent_id
    assert shopper.pay(intent_id)["status"] == "succeeded"
    return reservation_id, intent_id


def events_of(intent_id):
    db.session.expire_all()
    return db.session.execute(select(PaymentEvent.trigger, PaymentEvent.outcome, PaymentEvent.refund_id)
                              .where(PaymentEvent.payment_intent_id == intent_id)).all()


def test_a_payment_whose_webhook_never_came_is_completed_by_the_sweep(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        lapse(reservation_id)

        swept = sweep()
        assert stored_hold(reservation_id).status == "COMPLETED"
        assert swept["intents"] == {"completed_late": 1}
        assert sweep()["intents"] == {}  # settled: never asked about again
        assert events_of(intent_id) == [("reconcile", "completed_late", None)]
        assert shopper.intent(intent_id)["status"] == "succeeded"
        assert shopper.refunds(intent_id) == []


def test_a_paid_hold_about_to_lapse_is_completed_on_time(make_app, settings, localstripe):
    app = make_app({**stripe_settings(settings, localstripe), "SWEEP_INTERVAL_SECONDS": "60"})
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        # It lapses within the next sweep interval.
        db.session.execute(update(Hold).values(expires_at=utcnow() + timedelta(seconds=30)))
        db.session.commit()
        sweep()
        assert stored_hold(reservation_id).status == "COMPLETED"
        assert events_of(intent_id) == [("reconcile", "completed", None)]


def test_a_lapsed_paid_hold_whose_unit_was_sold_meanwhile_is_refunded_exactly_once(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1, price=3100)
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        lapse(reservation_id)
        hold_fragment(client, product, 2)  # another shopper takes the lapsed unit
        for _ in range(3):
            sweep()
        hold = stored_hold(reservation_id)
        assert hold.status == "REFUNDED"
        refunds = shopper.refunds(intent_id)
        assert [(r["id"], r["amount"]) for r in refunds] == [(hold.refund_id, 3100)]
        assert events_of(intent_id) == [("reconcile", "refunded", hold.refund_id)]


def test_the_return_url_settles_the_hold_before_the_page_answers(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        client.get("/")  # a browser, with its cookie
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        page = client.get(f"/reservations/{reservation_id}?payment_intent={intent_id}"
                          f"&payment_intent_client_secret=x&redirect_status=succeeded")
        assert page.status_code == 200
        assert stored_hold(reservation_id).status == "COMPLETED"  # before any webhook, at once
        # The fragment the page then asks for shows the sale.
        fragment = client.get(f"/reservations/{reservation_id}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
        assert 'data-status="COMPLETED"' in fragment.get_data(as_text=True)
        # Then the webhook arrives: a duplicate that changes nothing.
        hold = {"reservationId": reservation_id, "amount": 2500, "currency": "usd", "productId": product.id,
                "userId": visitor(1), "paymentIntentId": intent_id}
        payload = intent_event(hold, event_id="evt_after_return")
        assert client.post("/api/webhooks/stripe", data=payload,
                           headers={"Stripe-Signature": stripe_signature(payload)}).status_code == 200
        assert sorted(events_of(intent_id)) == [("return", "completed", None), ("webhook", "duplicate", None)]


def test_a_forged_return_changes_nothing(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=3)
        mine, _ = hold_fragment(client, product, 1)
        theirs, _ = hold_fragment(client, product, 2)
        unpaid, _ = hold_fragment(client, product, 3)
        their_intent = stored_hold(theirs).payment_intent_id
        shopper.pay(their_intent)
        forged = [their_intent, stored_hold(unpaid).payment_intent_id, "pi_unknown_0000000000", "", "x" * 300]
        for named in forged:
            for path in (f"/reservations/{mine}", f"/reservations/{unpaid}"):
                assert client.get(f"{path}?payment_intent={named}&redirect_status=succeeded").status_code == 200
        assert [stored_hold(h).status for h in (mine, theirs, unpaid)] == ["PENDING", "PENDING", "PENDING"]
        assert db.session.execute(select(PaymentEvent)).all() == []


def test_with_stripe_unreachable_the_sweep_asks_again_later(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        lapse(reservation_id)
    # The same shop, its Stripe unreachable (a closed port): the sweep learns nothing, forgets nothing.
    cut_off = make_app({**stripe_settings(settings, localstripe), "STRIPE_API_BASE": "http://127.0.0.1:9"})
    with cut_off.app_context():
        assert sweep()["intents"] == {"unreachable": 1}
        hold = stored_hold(reservation_id)
        assert (hold.status, hold.payment_released_at, hold.intent_checks) == ("EXPIRED", None, 1)
        assert hold.intent_check_after is not None
        assert sweep()["intents"] == {}  # backing off
    with app.app_context():
        db.session.execute(update(Hold).values(intent_check_after=None))  # the backoff has passed
        db.session.commit()
        assert sweep()["intents"] == {"completed_late": 1}
        assert stored_hold(reservation_id).status == "COMPLETED"


def test_releasing_a_paid_hold_settles_it_instead(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, intent_id = held_and_paid(client, shopper, product)
        released = client.delete(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": visitor(1)})
        assert released.status_code == 409
        assert released.get_json()["status"] == "COMPLETED"
        assert stored_hold(reservation_id).status == "COMPLETED"


def test_paid_holds_whose_jobs_vanished_with_redis_all_complete(make_app, settings, localstripe, kafka, worker,
                                                               live_server, tmp_path):
    """localstripe's own webhooks reach the shop, Kafka hands the events to RQ, then Redis
    restarts empty before any job ran: reconciliation completes every one of them."""
    redis = RedisServer().start()
    topic = f"payments-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic)
    shop_settings = {**stripe_settings(settings, localstripe), "REDIS_URL": redis.url,
                     "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "KAFKA_PAYMENTS_TOPIC": topic,
                     "HOLD_TTL_SECONDS": "20", "SWEEP_INTERVAL_SECONDS": "1"}
    shop = live_server(shop_settings, workers=2, threads=4)
    hook = f"storefront-{uuid.uuid4().hex[:8]}"
    requests.post(f"{localstripe.url}/_config/webhooks/{hook}", timeout=10, json={
        "url": f"{shop.url}/api/webhooks/stripe", "secret": TEST_WEBHOOK_SECRET,
        "events": ["payment_intent.succeeded"]}).raise_for_status()
    shopper = Shopper(localstripe)
    app = make_app(shop_settings)
    try:
        with app.app_context():
            product = make_product(total=30)
            consumer = worker(shop_settings, role="consumer")  # hands events to RQ; no job runs
            with requests.Session() as session:
                ids = []
                for n in range(30):
                    held = session.post(f"{shop.url}/api/reservations", headers=HTMX, timeout=10,
                                        data={"productId": product.id, "userId": visitor(n)})
                    assert held.status_code == 201
                    ids.append(held.text.split('id="hold-')[1].split('"')[0])
            intents = [stored_hold(h).payment_intent_id for h in ids]
            with ThreadPoolExecutor(max_workers=8) as pool:
                assert all(i["status"] == "succeeded" for i in pool.map(shopper.pay, intents))
            # The consumer hands them to RQ and commits its offsets past all 30.
            deadline = time.monotonic() + 60
            while True:
                lag = consumer_lag((kafka.bootstrap_servers,), topic)
                if sum(p["end"] for p in lag.values()) == 30 and sum(p["lag"] for p in lag.values()) == 0:
                    break
                assert time.monotonic() < deadline, f"the 30 events were not all handed to RQ: {lag}"
                time.sleep(0.5)
            consumer.stop()
            queued = Redis.from_url(redis.url)
            assert queued.llen("rq:queue:storefront") >= 1
            queued.close()

            # Redis stops and comes back empty, on the same address: every job is gone.
            port = redis.port
            redis.stop()
            redis = RedisServer()
            redis.port = port
            redis.start()
            assert {stored_hold(h).status for h in ids} == {"PENDING"}

            worker(shop_settings)  # the sweep every second asks Stripe as the holds come to lapse
            deadline = time.monotonic() + 90
            while {stored_hold(h).status for h in ids} != {"COMPLETED"}:
                assert time.monotonic() < deadline, {stored_hold(h).status for h in ids}
                time.sleep(0.5)
            assert all(shopper.refunds(intent) == [] for intent in intents[:3])
            db.session.expire_all()
            triggers = {trigger for trigger, in db.session.execute(select(PaymentEvent.trigger))}
            assert triggers == {"reconcile"}
    finally:
        requests.post(f"{localstripe.url}/_config/webhooks/{hook}", timeout=10,
                      json={"url": "http://127.0.0.1:9/", "secret": "x", "events": []})
        redis.stop()


def test_a_postgresql_restart_gives_503s_while_down_and_no_5xx_after(tmp_path, live_server):
    """Holds and webhooks run against a PostgreSQL of this test's own, which is stopped
    for a few seconds and started again on the same data."""
    server = PostgresServer(durable=True)
    server.start()
    try:
        url = server.url()
        env = {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(32), "DEMO_PAYMENTS": "1",
               "MAX_HELD_UNITS_PER_ADDRESS": "100000", "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
               "HOLD_RATE_LIMIT": "100000/minute"}
        app = create_app(env, instance_path=str(tmp_path / "instance"))
        with app.app_context():
            import flask_migrate

            flask_migrate.upgrade()
            product_id = make_product(total=1000).id
            db.session.remove()
            db.engine.dispose()
        shop = live_server(env, workers=2, threads=4)

        def burst(n: int, tag: str) -> list[tuple[int, float, dict]]:
            """n holds and n stock checks from 8 threads at once: (status, seconds, body) each."""
            def one(k):
                started = time.monotonic()
                if k % 2:
                    response = requests.get(f"{shop.url}/api/inventory/check/{product_id}", timeout=15)
                else:
                    response = requests.post(f"{shop.url}/api/reservations", timeout=15, json={
                        "productId": product_id, "userId": visitor(f"{tag}-{k}")})
                return response.status_code, time.monotonic() - started, response.json()
            with ThreadPoolExecutor(max_workers=8) as pool:
                return list(pool.map(one, range(2 * n)))

        # Every worker's pool holds several connections, then the database restarts while
        # nobody is asking: those connections are dead when the next requests come.
        warm = burst(40, "warm")
        assert {status for status, _, _ in warm} == {200, 201}
        server.stop_keeping_data()
        server.start_again()
        after_quiet_restart = burst(40, "quiet")
        assert {status for status, _, _ in after_quiet_restart} == {200, 201}, after_quiet_restart

        # Down during traffic: a clear 503 within a few seconds, never a 500.
        paid = [body for status, _, body in warm if status == 201][:5]
        server.stop_keeping_data()
        down = burst(10, "down")
        assert {status for status, _, _ in down} == {503}
        assert max(seconds for _, seconds, _ in down) < 6
        assert {body["error"] for _, _, body in down} == {"unavailable"}
        # Payments arrive meanwhile: refused with 503, so Stripe delivers them again.
        payloads = [intent_event(hold, event_id=f"evt_down_{n}") for n, hold in enumerate(paid)]
        for payload in payloads:
            refused = requests.post(f"{shop.url}/api/webhooks/stripe", data=payload, timeout=15,
                                    headers={"Stripe-Signature": stripe_signature(payload)})
            assert refused.status_code == 503 and refused.headers["Retry-After"]
        server.start_again()
        after = burst(40, "after")
        assert {status for status, _, _ in after} == {200, 201}, after
        for payload in payloads:  # Stripe's redelivery
            response = requests.post(f"{shop.url}/api/webhooks/stripe", data=payload, timeout=15,
                                     headers={"Stripe-Signature": stripe_signature(payload)})
            assert response.status_code == 200
        with app.app_context():
            statuses = {db.session.get(Hold, uuid.UUID(h["reservationId"])).status for h in paid}
            db.session.remove()
            db.engine.dispose()
        assert statuses == {"COMPLETED"}
    finally:
        server.stop()


def test_a_checkout_is_settled_on_its_return_and_by_the_sweep_without_a_webhook(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)

    def paid_checkout(user):
        for product in products:
            assert client.post("/api/cart/items", json={"productId": product.id, "userId": visitor(user)}
                               ).status_code == 200
        html = client.post("/api/checkouts", json={"userId": visitor(user)}, headers=HTMX).get_data(as_text=True)
        checkout_id = html.split('id="checkout-')[1].split('"')[0]
        lines = [o for o in client.get("/api/orders", headers={"X-Visitor-Id": visitor(user)}).get_json()["orders"]
                 if o["checkoutId"] == checkout_id]
        intent_id = lines[0]["paymentIntentId"]
        assert shopper.pay(intent_id)["status"] == "succeeded"
        return checkout_id, intent_id, [line["reservationId"] for line in lines]

    with app.app_context():
        products = [make_product(total=3, price=1000), make_product(total=3, price=2000)]
        checkout_id, intent_id, lines = paid_checkout(1)
        assert client.get(f"/checkouts/{checkout_id}?payment_intent={intent_id}").status_code == 200
        assert {stored_hold(line).status for line in lines} == {"COMPLETED"}
        assert events_of(intent_id) == [("return", "completed", None)]

        checkout_id, intent_id, lines = paid_checkout(2)
        for line in lines:
            lapse(line)
        assert sweep()["intents"] == {"completed": 1}  # one question for the checkout's one intent
        assert {stored_hold(line).status for line in lines} == {"COMPLETED"}
        assert events_of(intent_id) == [("reconcile", "completed", None)]
