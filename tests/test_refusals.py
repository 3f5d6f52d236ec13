"""A "no" costs no lock and writes nothing, and stays exact (issue 20's first part): the same
rules on PostgreSQL (storefront/inventory/sql/place_hold_v9.sql) and on SQLite
(the grant step, inventory/grants.py), so the tests run on both."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select, text

from storefront.extensions import db
from storefront.inventory.models import Hold
from tests.factories import TEST_WEBHOOK_SECRET, counters_against_holds, intent_event, lapse, make_product, stripe_signature, visitor, units


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, app, embedded_app):
    """The app on the suite's PostgreSQL, then the embedded one on SQLite."""
    chosen = app if request.param == "postgresql" else embedded_app
    with chosen.app_context():
        yield chosen


def hold(client, product_id, user, quantity=1):
    return client.post("/api/reservations", json={"productId": product_id, "userId": visitor(user),
                                                  "quantity": quantity})


def status_of(reservation_id) -> str:
    db.session.expire_all()
    return db.session.get(Hold, uuid.UUID(reservation_id)).status


def test_a_refusal_counts_lapsed_holds_as_free_and_releases_none_of_them(shop):
    client = shop.test_client()
    product = make_product(total=2)
    live = hold(client, product.id, 1).get_json()
    lapsed = hold(client, product.id, 2).get_json()
    lapse(lapsed["reservationId"])

    refused = hold(client, product.id, 3, quantity=2)
    assert refused.status_code == 409
    assert refused.get_json()["available"] == 1  # the lapsed unit counts as free...
    assert status_of(lapsed["reservationId"]) == "PENDING"  # ...and the refusal wrote nothing
    db.session.expire_all()
    assert units(product.id).held == 2

    # A hold that fits takes the lapsed unit, releasing it on the way.
    assert hold(client, product.id, 3, quantity=1).status_code == 201
    assert status_of(lapsed["reservationId"]) == "EXPIRED"
    assert status_of(live["reservationId"]) == "PENDING"


def test_the_owners_own_hold_comes_back_on_a_sold_out_product(shop):
    client = shop.test_client()
    product = make_product(total=1)
    mine = hold(client, product.id, 1)
    assert mine.status_code == 201
    again = hold(client, product.id, 1)
    assert (again.status_code, again.get_json()["reservationId"]) == (200, mine.get_json()["reservationId"])
    assert hold(client, product.id, 2).status_code == 409


def test_a_refusal_waits_for_no_lock(app):
    """While another transaction holds the sold-out product's row lock (a payment settling, a
    stock change), a hold that cannot be served is answered at once, not after it."""
    client = app.test_client()
    product = make_product(total=1)
    assert hold(client, product.id, 1).status_code == 201
    answered = []
    with db.engine.connect() as locker:
        locker.execute(text("SELECT 1 FROM products WHERE id = :id FOR UPDATE"), {"id": product.id})
        refusal = threading.Thread(target=lambda: answered.append(hold(app.test_client(), product.id, 2)))
        refusal.start()
        refusal.join(timeout=20)
        still_waiting = refusal.is_alive()
        locker.rollback()
    refusal.join()
    assert not still_waiting, "the refusal waited for the product's row lock"
    assert answered[0].status_code == 409


def test_a_refusal_storm_on_a_sold_out_product_lets_every_paid_hold_complete(app, settings, live_server):
    """Shoppers keep pressing Buy on a sold-out product while the ones who hold it pay: every
    refusal is a 409 and every payment completes, under gunicorn's processes."""
    settings = {**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET}
    server = live_server(settings, workers=2, threads=8)
    product = make_product(total=20)
    paid = [requests.post(f"{server.url}/api/reservations", json={"productId": product.id, "userId": visitor(n)},
                          timeout=30).json() for n in range(20)]
    stop = threading.Event()

    def storm(n):
        answers = []
        with requests.Session() as session:
            while not stop.is_set():
                answers.append(session.post(f"{server.url}/api/reservations", timeout=30, json={
                    "productId": product.id, "userId": visitor(f"storm{n}-{len(answers)}")}).status_code)
        return answers

    def pay(held):
        payload = intent_event(held, event_id=f"evt_storm_{held['reservationId']}")
        return requests.post(f"{server.url}/api/webhooks/stripe", data=payload, timeout=30,
                             headers={"Stripe-Signature": stripe_signature(payload),
                                      "Content-Type": "application/json"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        storms = [pool.submit(storm, n) for n in range(8)]
        payments = list(pool.map(pay, paid))
        stop.set()
        refusals = [status for each in storms for status in each.result()]
    assert payments == [200] * 20
    assert refusals and set(refusals) == {409}
    db.session.expire_all()
    statuses = db.session.execute(select(Hold.status).where(Hold.product_id == product.id)).scalars().all()
    assert sorted(statuses) == ["COMPLETED"] * 20
    assert (units(product.id).held, units(product.id).sold) == (0, 20)
    assert counters_against_holds(product.id) == []  # sold from each hold's own bucket, 20 of them
