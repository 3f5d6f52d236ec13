"""The cart: lines, a checkout that holds all or nothing, one payment, and the order history."""

import threading
import uuid
from datetime import timedelta
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, update

from storefront.cart.checkout import MAX_CART_LINES
from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Hold
from tests.factories import TEST_WEBHOOK_SECRET, lapse, make_product, stripe_signature, visitor, units

STRIPE = {"STRIPE_SECRET_KEY": "sk_test_StorefrontSuite123", "STRIPE_PUBLISHABLE_KEY": "pk_test_StorefrontSuite123",
          "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET, "DEMO_PAYMENTS": "0"}


def add(client, product_id, quantity=1, user=1):
    return client.post("/api/cart/items", json={"productId": product_id, "quantity": quantity, "userId": visitor(user)})


def cart(client, user=1):
    return client.get("/api/cart", headers={"X-Visitor-Id": visitor(user)})


def checkout(client, user=1, **kwargs):
    return client.post("/api/checkouts", json={"userId": visitor(user)}, **kwargs)


def counters(product_id):
    db.session.expire_all()
    product = db.session.get(Product, product_id)
    return units(product.id).held, units(product.id).sold


def succeeded_event(intent_id, checkout_body, event_id=None) -> bytes:
    import json

    return json.dumps({
        "id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {
            "id": intent_id, "object": "payment_intent", "amount": checkout_body["amount"],
            "amount_received": checkout_body["amount"], "currency": checkout_body["currency"], "status": "succeeded",
            "metadata": {"checkoutId": checkout_body["checkoutId"], "userId": checkout_body["reservations"][0]["userId"],
                         "reservationIds": ",".join(r["reservationId"] for r in checkout_body["reservations"])}}},
    }).encode()


def deliver(client, payload):
    return client.post("/api/webhooks/stripe", data=payload, headers={"Stripe-Signature": stripe_signature(payload)})


@pytest.fixture
def shop(make_app, settings):
    app = make_app({**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET})
    with app.app_context():
        yield app


def test_lines_are_set_listed_and_removed(shop):
    client = shop.test_client()
    mug, lamp = make_product(total=7, price=2500), make_product(total=3, price=1000)
    assert cart(client).get_json() == {"items": [], "amount": 0, "currency": "usd"}
    add(client, mug.id, 2)
    body = add(client, lamp.id).get_json()
    assert body == {"items": [{"productId": mug.id, "quantity": 2, "available": 7, "amount": 5000},
                              {"productId": lamp.id, "quantity": 1, "available": 3, "amount": 1000}],
                    "amount": 6000, "currency": "usd"}
    assert add(client, mug.id, 3).get_json()["items"][0]["quantity"] == 3  # sets, not adds
    removed = client.delete(f"/api/cart/items/{lamp.id}", headers={"X-Visitor-Id": visitor(1)})
    assert removed.status_code == 200 and [i["productId"] for i in removed.get_json()["items"]] == [mug.id]
    assert cart(client, user=2).get_json()["items"] == []  # each visitor their own cart
    assert counters(mug.id) == (0, 0)  # a cart holds nothing


@pytest.mark.parametrize(("data", "field"), [
    ('{"userId": "VISITOR"}', None),  # the body may name the visitor
    ("[1, 2]", "body"),  # a JSON body that is not an object was a 500 (a list has no .get)
    ("[" * 60_000, "body"),  # nor is one nested past the parser
    ("", "userId"),  # nobody named at all
])
def test_a_line_is_removed_for_the_visitor_its_body_names_and_a_bad_body_is_400(shop, data, field):
    client = shop.test_client()
    lamp = make_product(total=3)
    add(client, lamp.id)
    response = client.delete(f"/api/cart/items/{lamp.id}", data=data.replace("VISITOR", visitor(1)),
                             content_type="application/json" if data else None)
    if field is None:
        assert response.status_code == 200 and response.get_json()["items"] == []
    else:
        assert response.status_code == 400 and response.get_json()["field"] == field
        assert cart(client).get_json()["items"] != []


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"productId": "x", "userId": visitor(1)}, 400, "productId"),
    ({"productId": 1, "quantity": 0, "userId": visitor(1)}, 400, "quantity"),
    ({"productId": 1, "quantity": 6, "userId": visitor(1)}, 400, "quantity"),
    ({"productId": 1, "userId": "no"}, 400, "userId"),
    ({"productId": 999999, "userId": visitor(1)}, 404, None),
])
def test_bad_lines_are_refused(shop, body, status, field):
    make_product(total=5)
    response = shop.test_client().post("/api/cart/items", json=body)
    assert response.status_code == status
    if field:
        assert response.get_json()["field"] == field


def test_a_cart_is_capped_so_its_ids_fit_stripe_metadata(make_app, settings):
    app = make_app({**settings, "MAX_HELD_UNITS_PER_VISITOR": "50"})
    client = app.test_client()
    with app.app_context():
        products = [make_product(total=2) for _ in range(MAX_CART_LINES + 1)]
        for product in products[:MAX_CART_LINES]:
            assert add(client, product.id).status_code == 200
        full = add(client, products[-1].id)
        assert full.status_code == 409 and full.get_json()["error"] == "cart_full"
        placed = checkout(client).get_json()
        ids = ",".join(r["reservationId"] for r in placed["reservations"])
        assert len(placed["reservations"]) == MAX_CART_LINES and len(ids) <= 500


def test_a_checkout_counts_against_the_visitors_hold_limit(shop):
    client = shop.test_client()
    for _ in range(3):
        add(client, make_product(total=9).id, 4)  # 12 units; the default limit is 10
    refused = checkout(client)
    assert refused.status_code == 409 and refused.get_json()["error"] == "hold_limit"
    assert db.session.execute(select(func.count()).select_from(Hold)).scalar_one() == 0


def test_checkout_of_three_lines_holds_all_and_one_payment_completes_all(shop):
    client = shop.test_client()
    products = [make_product(total=5, price=price) for price in (1000, 2000, 3000)]
    for n, product in enumerate(products):
        add(client, product.id, n + 1)
    response = checkout(client)
    assert response.status_code == 201
    body = response.get_json()
    assert body["amount"] == 1000 + 4000 + 9000 and body["currency"] == "usd"
    assert [r["status"] for r in body["reservations"]] == ["PENDING"] * 3
    assert len({r["expiresAt"] for r in body["reservations"]}) == 1 == len({body["expiresAt"]})
    assert [counters(p.id) for p in products] == [(1, 0), (2, 0), (3, 0)]
    assert len(cart(client).get_json()["items"]) == 3  # not emptied before the payment

    payload = succeeded_event("pi_checkout_one", body)
    for _ in range(3):  # a duplicate changes nothing
        assert deliver(client, payload).status_code == 200
    db.session.expire_all()
    statuses = db.session.execute(select(Hold.status).where(Hold.user_id == visitor(1))).scalars().all()
    assert statuses == ["COMPLETED"] * 3
    assert [counters(p.id) for p in products] == [(0, 1), (0, 2), (0, 3)]
    assert cart(client).get_json()["items"] == []  # emptied once paid


def test_a_short_line_fails_the_whole_checkout_and_holds_nothing(shop):
    client = shop.test_client()
    plenty, scarce = make_product(total=5), make_product(total=1)
    add(client, plenty.id, 2)
    add(client, scarce.id, 2)
    response = checkout(client)
    assert response.status_code == 409
    assert response.get_json()["error"] == "out_of_stock"
    assert response.get_json()["items"] == [{"productId": scarce.id, "available": 1}]
    assert counters(plenty.id) == (0, 0) and counters(scarce.id) == (0, 0)
    assert db.session.execute(select(func.count()).select_from(Hold)).scalar_one() == 0


def test_an_empty_cart_cannot_check_out(shop):
    response = checkout(shop.test_client())
    assert response.status_code == 400 and response.get_json()["error"] == "empty_cart"


def test_the_checkout_takes_over_the_visitors_own_single_hold(shop):
    client = shop.test_client()
    product = make_product(total=1)
    single = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    add(client, product.id)
    assert checkout(client).status_code == 201
    shown = client.get(f"/api/reservations/{single['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert shown.get_json()["status"] == "CANCELLED"
    assert counters(product.id) == (1, 0)


def test_two_carts_racing_in_opposite_orders_never_oversell_or_deadlock(app, settings, live_server):
    """Each pair of carts wants the last unit of the same two products, added in opposite orders."""
    pairs = [(make_product(total=1).id, make_product(total=1).id) for _ in range(15)]
    server = live_server(settings, workers=2, threads=8)
    start = threading.Barrier(len(pairs) * 2)

    def shopper(args):
        (first, second), user = args
        with requests.Session() as session:
            for product_id in (first, second):
                session.post(f"{server.url}/api/cart/items", json={"productId": product_id, "userId": user},
                             timeout=30).raise_for_status()
            start.wait()
            return session.post(f"{server.url}/api/checkouts", json={"userId": user}, timeout=30)

    jobs = []
    for n, (a, b) in enumerate(pairs):
        jobs.append(((a, b), visitor(f"a{n}")))
        jobs.append(((b, a), visitor(f"b{n}")))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(shopper, jobs))

    assert {r.status_code for r in answers} <= {201, 409}  # no 500, no deadlock error
    # Each pair's two units went to exactly one of its two carts: one 201 and one 409 per pair.
    for n in range(len(pairs)):
        assert sorted(r.status_code for r in answers[2 * n:2 * n + 2]) == [201, 409]
    db.session.expire_all()
    for a, b in pairs:
        held = [units(pid).held for pid in (a, b)]
        assert held == [1, 1]  # both lines held by the one winning cart, never one each


def test_a_line_that_lapsed_and_sold_elsewhere_is_refunded_exactly_its_amount(make_app, settings, localstripe):
    app = make_app({**settings, **STRIPE, "STRIPE_API_BASE": localstripe.url})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {STRIPE['STRIPE_SECRET_KEY']}"}
    with app.app_context():
        kept, lost = make_product(total=3, price=1500), make_product(total=1, price=4200)
        add(client, kept.id, 2)
        add(client, lost.id, 1)
        html = client.post("/api/checkouts", json={"userId": visitor(1)},
                           headers={"HX-Request": "true"}).get_data(as_text=True)
        checkout_id = html.split('id="checkout-')[1].split('"')[0]
        body = client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}).get_json()["orders"]
        intent_id = body[0]["paymentIntentId"]
        assert intent_id and all(o["paymentIntentId"] == intent_id for o in body)  # one intent for the checkout
        intent = requests.get(f"{localstripe.url}/v1/payment_intents/{intent_id}", headers=auth, timeout=10).json()
        assert intent["amount"] == 2 * 1500 + 4200
        assert intent["metadata"]["checkoutId"] == checkout_id
        assert set(intent["metadata"]["reservationIds"].split(",")) == {o["reservationId"] for o in body}

        lost_hold = next(o for o in body if o["productId"] == lost.id)
        lapse(lost_hold["reservationId"])
        assert client.post("/api/reservations", json={"productId": lost.id, "userId": visitor(2)}).status_code == 201

        card = requests.post(f"{localstripe.url}/v1/payment_methods", headers=auth, timeout=10, data={
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2035",
            "card[cvc]": "123"}).json()
        requests.post(f"{localstripe.url}/v1/payment_intents/{intent_id}", headers=auth, timeout=10,
                      data={"payment_method": card["id"]}).raise_for_status()
        requests.post(f"{localstripe.url}/v1/payment_intents/{intent_id}/confirm", headers=auth,
                      timeout=10).raise_for_status()

        checkout_body = {"checkoutId": checkout_id, "amount": 7200, "currency": "usd",
                         "reservations": [{"reservationId": o["reservationId"], "userId": visitor(1)} for o in body]}
        payload = succeeded_event(intent_id, checkout_body, event_id="evt_checkout_late")
        for _ in range(3):
            assert deliver(client, payload).status_code == 200

        orders = {o["productId"]: o for o in client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)})
                  .get_json()["orders"]}
        assert orders[kept.id]["status"] == "COMPLETED" and orders[lost.id]["status"] == "REFUNDED"
        refunds = requests.get(f"{localstripe.url}/v1/refunds", params={"payment_intent": intent_id}, headers=auth,
                               timeout=10).json()["data"]
        assert [r["amount"] for r in refunds if r.get("payment_intent") == intent_id] == [4200]
        assert counters(kept.id) == (0, 2) and counters(lost.id) == (1, 0)

        page = client.get(f"/checkouts/{checkout_id}", headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)})
        assert "refunded: it sold out before your payment arrived" in page.get_data(as_text=True)


def test_order_history_shows_everything_to_its_visitor_and_nothing_to_another(shop):
    client = shop.test_client()
    product = make_product(total=5, name="History lamp")
    add(client, product.id)
    checkout(client)
    client.post("/api/reservations", json={"productId": make_product(total=2, name="Newer mug").id,
                                           "userId": visitor(1)})
    # The checkout an hour older, as a returning shopper's would be: the answer's order is
    # the order of the rows, not of two timestamps that may fall in the same second.
    db.session.execute(update(Hold.__table__).where(Hold.__table__.c.product_id == product.id)
                       .values(created_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    mine = client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}).get_json()["orders"]
    assert [o["productName"] for o in mine] == ["Newer mug", "History lamp"]
    assert client.get("/api/orders", headers={"X-Visitor-Id": visitor(2)}).get_json() == {"orders": []}
    page = client.get("/orders", headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)}).get_data(as_text=True)
    assert "History lamp" in page and "<html" not in page


def test_a_checkout_is_paid_through_kafka_and_rq_too(make_app, settings, redis_server, kafka, worker):
    from redis import Redis

    topic = f"payments-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic)
    Redis.from_url(redis_server.url).flushdb()
    full = {**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET, "REDIS_URL": redis_server.url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "KAFKA_PAYMENTS_TOPIC": topic}
    app = make_app(full)
    client = app.test_client()
    with app.app_context():
        products = [make_product(total=4) for _ in range(3)]
        for product in products:
            add(client, product.id)
        body = checkout(client).get_json()
        worker(full)
        assert deliver(client, succeeded_event("pi_via_kafka", body)).status_code == 200
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [counters(p.id) for p in products] != [(0, 1)] * 3:
            time.sleep(0.2)
        assert [counters(p.id) for p in products] == [(0, 1)] * 3
