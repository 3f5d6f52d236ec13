"""The draw (issue 45, the contract's *Drops: the draw*): entries for hours with the card authorised,
one per buyer and per card, winners ranked by a seed published by its hash and walked with second
choices, only winners captured, everyone else's authorisation cancelled, and results anyone can check.

The demo gateway's flows run on PostgreSQL and on SQLite; Stripe's (manual capture, the card's
fingerprint, cancellations, a capture that fails) on localstripe, with the draw run by worker.py."""

import csv
from collections import Counter
import hashlib
import hmac
import io
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Draw, DrawEntry, Hold
from storefront.orders.models import Order
from tests.factories import STRIPE_KEYS, TEST_WEBHOOK_SECRET, make_product, stripe_signature, units, visitor

NO_DOOR = {"QUEUE_PROOF_OF_WORK": "0"}
entries_table = DrawEntry.__table__
products_table = Product.__table__


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, make_app, settings, tmp_path):
    """The app on the suite's PostgreSQL, then on SQLite (the embedded database), with the demo gateway."""
    import flask_migrate

    if request.param == "postgresql":
        chosen = make_app({**settings, **NO_DOOR})
    else:
        chosen = make_app({"SECRET_KEY": settings["SECRET_KEY"], "DATABASE_URL": f"sqlite:///{tmp_path}/draw.db",
                           "DEMO_PAYMENTS": "1", "HOLD_RATE_LIMIT": "100000/minute", **NO_DOOR})
        with chosen.app_context():
            flask_migrate.upgrade()
    with chosen.app_context():
        yield chosen


@pytest.fixture
def pg_shop(make_app, settings):
    app = make_app({**settings, **NO_DOOR})
    with app.app_context():
        yield app


def draw_product(total: int = 2, sizes: dict | None = None, opened: bool = True, hours: int = 24, **fields):
    """A draw whose entries opened a minute ago (or open in an hour) and close ``hours`` later; with
    ``sizes`` ({label: units}), its options."""
    now = utcnow().replace(microsecond=0)
    starts_at = now - timedelta(minutes=1) if opened else now + timedelta(hours=1)
    window = {"starts_at": starts_at, "draw": True, "entries_close": starts_at + timedelta(hours=hours)}
    product = make_product(total=0 if sizes else total, **window, **fields)
    for label, units_of_size in (sizes or {}).items():
        make_product(total=units_of_size, option_of=product.id, option_label=label, name=f"{product.name} — {label}",
                     price=fields.get("price", 2500), **window)
    return SimpleNamespace(id=product.id, name=product.name)  # outlives the session the tests remove


def sizes_of(product: Product) -> dict[str, int]:
    rows = db.session.execute(select(products_table.c.option_label, products_table.c.id)
                              .where(products_table.c.option_of == product.id)).all()
    return {label: product_id for label, product_id in rows}


def delivery(n: int) -> dict:
    return {"email": f"buyer{n}@example.com", "name": f"Buyer {n}", "line1": f"{n} Main Street",
            "city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US"}


def enter(client, product_id, n, choice=None, backup=None, **body):
    payload = {"userId": visitor(n), "productId": choice or product_id, **delivery(n), **body}
    if backup is not None:
        payload["backupProductId"] = backup
    return client.post(f"/api/draws/{product_id}/entries", json=payload)


def authorise(client, product_id, n, entry_id):
    return client.post(f"/draws/{product_id}/entries/{entry_id}/demo-authorise",
                       headers={"X-Visitor-Id": visitor(n)})


def mine(client, product_id, n):
    return client.get(f"/api/draws/{product_id}/entries/mine", headers={"X-Visitor-Id": visitor(n)})


def close_entries(product_id: int) -> None:
    """The close comes: entries_close moved to a second ago (the product's and its options')."""
    close = utcnow() - timedelta(seconds=1)
    db.session.execute(update(products_table).where(
        (products_table.c.id == product_id) | (products_table.c.option_of == product_id)).values(entries_close=close))
    db.session.commit()


def run_draw(product_id: int) -> dict:
    from storefront.payments.draws import run_draw as the_draw

    outcome = the_draw(product_id)
    db.session.remove()
    return outcome


def stored_entries(product_id: int) -> list:
    db.session.remove()
    return db.session.execute(select(entries_table).where(entries_table.c.product_id == product_id)
                              .order_by(entries_table.c.created_at)).all()


def results(client, product_id) -> list[dict]:
    answer = client.get(f"/api/draws/{product_id}/results.csv")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def entered(client, product_id, people, **choices) -> dict:
    """Each of ``people`` enters and is authorised by the demo gateway: {n: entry id}."""
    ids = {}
    for n in people:
        answer = enter(client, product_id, n, **choices)
        assert answer.status_code == 201, answer.get_json()
        ids[n] = answer.get_json()["entryId"]
        assert authorise(client, product_id, n, ids[n]).get_json()["status"] == "entered"
    return ids


# Setting a draw up


def test_a_draw_window_over_five_days_is_refused_naming_entries_close(runner, app):
    add = ["product", "add", "--sku", "DRAW-1", "--name", "Drop", "--price", "180", "--total", "10",
           "--starts-at", "2031-01-01T10:00:00Z", "--draw"]
    too_long = runner.invoke(args=[*add, "--entries-close", "2031-01-06T10:00:01Z"])
    assert too_long.exit_code != 0 and "entries_close" in too_long.output and "5 days" in too_long.output
    missing = runner.invoke(args=add)
    assert missing.exit_code != 0 and "entries_close" in missing.output
    before = runner.invoke(args=[*add, "--entries-close", "2031-01-01T09:00:00Z"])
    assert before.exit_code != 0 and "after starts_at" in before.output
    both = runner.invoke(args=[*add, "--entries-close", "2031-01-03T10:00:00Z", "--queue"])
    assert both.exit_code != 0 and "not both" in both.output
    assert db.session.execute(select(Product)).first() is None

    added = runner.invoke(args=[*add, "--entries-close", "2031-01-06T10:00:00Z"])  # exactly 5 days
    assert added.exit_code == 0, added.output
    product = db.session.execute(select(Product)).scalar_one()
    assert product.draw and product.entries_close.isoformat().startswith("2031-01-06T10:00:00")
    stretched = runner.invoke(args=["product", "update", "DRAW-1", "--starts-at", "2031-01-01T09:00:00Z"])
    assert stretched.exit_code != 0 and "entries_close" in stretched.output


def test_the_catalogue_csv_carries_the_draw_and_its_options_share_it(runner, app, tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_text("sku,name,price,total,starts_at,option_of,option,draw,entries_close\n"
                    "SHOE,Shoe,180.00,0,2031-01-01T10:00:00Z,,,yes,2031-01-03T10:00:00Z\n"
                    "SHOE-42,,,3,,SHOE,EU 42,,\n")
    imported = runner.invoke(args=["catalog", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    option = db.session.execute(select(Product).where(Product.sku == "SHOE-42")).scalar_one()
    assert option.draw and option.entries_close is not None
    exported = runner.invoke(args=["catalog", "export"]).output
    header, shoe = exported.splitlines()[:2]
    assert header.endswith("draw,entries_close") and ",yes,2031-01-03" in shoe
    path.write_text("sku,name,price,total,starts_at,draw,entries_close\n"
                    "LONG,Long,10,1,2031-01-01T10:00:00Z,yes,2031-01-09T10:00:00Z\n")
    refused = runner.invoke(args=["catalog", "import", str(path)])
    assert refused.exit_code != 0 and "row 2, entries_close" in refused.output


def test_a_hold_a_cart_line_or_a_checkout_of_a_draw_is_draw_only(shop):
    client = shop.test_client()
    product = draw_product(total=3)
    held = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)})
    assert held.status_code == 409 and held.get_json()["error"] == "draw_only", held.get_json()
    carted = client.post("/api/cart/items", json={"userId": visitor(1), "productId": product.id})
    assert carted.status_code == 409 and carted.get_json()["error"] == "draw_only"
    # In a cart before it became a draw: its checkout is refused too, and nothing is held.
    before = make_product(total=3)
    assert client.post("/api/cart/items", json={"userId": visitor(2), "productId": before.id}).status_code == 200
    db.session.execute(update(products_table).where(products_table.c.id == before.id).values(
        draw=True, starts_at=utcnow() - timedelta(minutes=1), entries_close=utcnow() + timedelta(hours=1)))
    db.session.commit()
    checkout = client.post("/api/checkouts", json={"userId": visitor(2)})
    assert checkout.status_code == 409 and checkout.get_json()["error"] == "draw_only", checkout.get_json()
    assert units(product.id).held == 0 and units(before.id).held == 0


# Entering


def test_entering_authorises_one_unit_and_shows_the_entry_to_its_owner_alone(shop):
    client = shop.test_client()
    product = draw_product(total=2, price=18000)
    entry_id = str(uuid.uuid4())
    answer = enter(client, product.id, 1, entryId=entry_id)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["entryId"] == entry_id and body["status"] == "pending_payment"
    assert body["amount"] == 18000 and body["currency"] == "usd" and body["productId"] == product.id
    assert body["paymentIntentId"].startswith("pi_demo_") and body["clientSecret"]
    assert mine(client, product.id, 2).status_code == 404
    assert authorise(client, product.id, 1, entry_id).get_json()["status"] == "entered"
    standing = client.get(f"/api/draws/{product.id}").get_json()
    assert standing["state"] == "open" and standing["entries"] == 1 and standing["units"] == 2
    assert standing["seed"] is None and len(standing["seedHash"]) == 64
    assert mine(client, product.id, 1).get_json()["status"] == "entered"
    assert units(product.id).held == 0  # an entry holds nothing: the draw gives the units


def test_one_entry_per_buyer_by_owner_email_and_address(shop):
    client = shop.test_client()
    product = draw_product(total=1)
    assert enter(client, product.id, 1).status_code == 201
    again = enter(client, product.id, 1)
    assert again.status_code == 409 and again.get_json()["error"] == "already_entered"
    assert again.get_json()["field"] == "owner"
    by_email = enter(client, product.id, 2, email="BUYER1@example.com ")
    assert by_email.status_code == 409 and by_email.get_json()["field"] == "email"
    by_address = enter(client, product.id, 3, line1="1 main street.")
    assert by_address.status_code == 409 and by_address.get_json()["field"] == "address"
    assert len(stored_entries(product.id)) == 1


def test_bad_entries_are_refused_naming_the_field_and_change_nothing(shop):
    client = shop.test_client()
    product = draw_product(sizes={"EU 41": 1, "EU 42": 1})
    sizes = sizes_of(product)
    other = make_product(total=1)
    for body, field in (({"productId": other.id}, "productId"),
                        ({"backupProductId": sizes["EU 41"]}, "backupProductId"),
                        ({"email": "not-an-email"}, "email"),
                        ({"entryId": "not-a-uuid"}, "entryId")):
        answer = client.post(f"/api/draws/{product.id}/entries",
                             json={"userId": visitor(1), "productId": sizes["EU 41"], **delivery(1), **body})
        assert answer.status_code == 400 and answer.get_json()["field"] == field, (body, answer.get_json())
    assert stored_entries(product.id) == []
    not_a_draw = client.post(f"/api/draws/{other.id}/entries", json={"userId": visitor(1), "productId": other.id,
                                                                       **delivery(1)})
    assert not_a_draw.status_code == 409 and not_a_draw.get_json()["error"] == "no_draw"


def test_entries_open_at_the_start_and_close_at_entries_close(shop):
    client = shop.test_client()
    later = draw_product(total=1, opened=False)
    early = enter(client, later.id, 1)
    assert early.status_code == 409 and early.get_json()["error"] == "draw_not_open" and early.get_json()["opensAt"]
    assert client.get(f"/api/draws/{later.id}").get_json()["state"] == "not_open"
    product = draw_product(total=1)
    close_entries(product.id)
    late = enter(client, product.id, 1)
    assert late.status_code == 409 and late.get_json()["error"] == "draw_closed"


def test_withdrawing_before_the_close_releases_the_authorisation_and_lets_the_buyer_enter_again(shop):
    client = shop.test_client()
    product = draw_product(total=1)
    first = entered(client, product.id, [1])[1]
    withdrawn = client.delete(f"/api/draws/{product.id}/entries/mine", headers={"X-Visitor-Id": visitor(1)})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["status"] == "withdrawn"
    row = next(entry for entry in stored_entries(product.id) if str(entry.id) == first)
    assert row.released_at is not None
    again = enter(client, product.id, 1)
    assert again.status_code == 201 and again.get_json()["entryId"] != first
    close_entries(product.id)
    late = client.delete(f"/api/draws/{product.id}/entries/mine", headers={"X-Visitor-Id": visitor(1)})
    assert late.status_code == 409 and late.get_json()["error"] == "draw_closed"


# The draw


def hmac_rank(seed_hex: str, entry_ids) -> list[str]:
    seed = bytes.fromhex(seed_hex)
    return sorted(entry_ids, key=lambda entry_id: hmac.new(seed, entry_id.encode(), hashlib.sha256).digest())


def test_the_draw_ranks_by_the_revealed_seed_sells_the_units_to_the_first_ranks_and_releases_the_rest(shop):
    client = shop.test_client()
    product = draw_product(total=3)
    seed_hash = client.get(f"/api/draws/{product.id}").get_json()["seedHash"]
    ids = entered(client, product.id, range(1, 9))
    pending = enter(client, product.id, 9)  # never authorised: not in the draw
    assert pending.status_code == 201
    assert client.get(f"/api/draws/{product.id}/results.csv").status_code == 409
    close_entries(product.id)
    outcome = run_draw(product.id)
    assert outcome["state"] == "drawn" and outcome["won"] == 3, outcome

    standing = client.get(f"/api/draws/{product.id}").get_json()
    assert standing["state"] == "drawn" and standing["seedHash"] == seed_hash
    assert hashlib.sha256(bytes.fromhex(standing["seed"])).hexdigest() == seed_hash
    published = results(client, product.id)
    assert [row["entry_id"] for row in published] == hmac_rank(standing["seed"], ids.values())
    assert [row["rank"] for row in published] == [str(n) for n in range(1, 9)]
    assert [row["outcome"] for row in published] == ["won"] * 3 + ["lost"] * 5
    assert all(row["product_id"] == str(product.id) for row in published[:3])
    assert units(product.id).sold == 3 and units(product.id).held == 0
    entries = {str(entry.id): entry for entry in stored_entries(product.id)}
    assert entries[pending.get_json()["entryId"]].status == "lost"
    assert all(entry.released_at is not None for entry in entries.values() if entry.status == "lost")
    assert all(entry.notified_at is not None for entry in entries.values())
    for row in published[:3]:  # a winner's order is an order like any other: paid, with its delivery
        order = db.session.get(Order, uuid.UUID(row["entry_id"]))
        assert order.paid_at is not None and order.kind == "hold" and order.ship_line1
        n = next(n for n, entry_id in ids.items() if entry_id == row["entry_id"])
        mine_now = mine(client, product.id, n).get_json()
        assert mine_now["status"] == "won" and mine_now["rank"] == int(row["rank"])
        assert mine_now["wonProductId"] == product.id
    assert run_draw(product.id)["won"] == 0  # run again: nothing changes
    assert units(product.id).sold == 3


def walk(entries_in_rank_order, stock: dict) -> list[tuple[str, int | None]]:
    """The contract's walk, written out again: each entry wins its choice, or else its second choice,
    while any is left."""
    left, outcomes = dict(stock), []
    for entry in entries_in_rank_order:
        won = next((item for item in (entry.choice_id, entry.backup_id) if item is not None and left.get(item)), None)
        if won is not None:
            left[won] -= 1
        outcomes.append(("won" if won else "lost", won))
    return outcomes


def test_the_walk_gives_each_rank_its_choice_or_else_its_second_choice_while_any_is_left(shop):
    client = shop.test_client()
    product = draw_product(sizes={"EU 41": 2, "EU 42": 1, "EU 43": 2})
    sizes = sizes_of(product)
    choices = [("EU 42", "EU 41"), ("EU 42", "EU 43"), ("EU 42", None), ("EU 41", "EU 42"), ("EU 41", None),
               ("EU 43", "EU 42"), ("EU 42", "EU 41"), ("EU 41", "EU 43"), ("EU 43", None), ("EU 42", "EU 43")]
    for n, (choice, backup) in enumerate(choices, start=1):
        answer = enter(client, product.id, n, choice=sizes[choice], backup=sizes[backup] if backup else None)
        assert answer.status_code == 201, answer.get_json()
        assert authorise(client, product.id, n, answer.get_json()["entryId"]).get_json()["status"] == "entered"
    close_entries(product.id)
    run_draw(product.id)
    ranked = sorted((entry for entry in stored_entries(product.id)), key=lambda entry: entry.rank)
    expected = walk(ranked, {sizes["EU 41"]: 2, sizes["EU 42"]: 1, sizes["EU 43"]: 2})
    published = results(client, product.id)
    assert [(row["outcome"], int(row["product_id"]) if row["product_id"] else None) for row in published] == expected
    assert sum(outcome == "won" for outcome, _ in expected) == 5  # every unit went
    for label, product_id in sizes.items():
        assert units(product_id).sold == {"EU 41": 2, "EU 42": 1, "EU 43": 2}[label]


def test_a_draw_without_entries_is_drawn_and_publishes_an_empty_list(shop):
    client = shop.test_client()
    product = draw_product(total=2)
    close_entries(product.id)
    assert run_draw(product.id)["state"] == "drawn"
    assert results(client, product.id) == []
    assert units(product.id).sold == 0


def test_the_product_page_shows_the_window_and_the_check_page_is_linked_once_drawn(shop):
    client = shop.test_client()
    product = draw_product(total=1)
    page = shop.test_client().get(f"/products/{product.id}").get_data(as_text=True)  # a browser of its own
    assert "Enter the draw" in page and "How the winners are drawn" in page and "buy-button" not in page.split(
        'class="draw"')[0].split("product-details")[1]
    ids = entered(client, product.id, [1, 2])
    # Each shopper's page from a browser of their own (a browser keeps the first visitor id it names).
    fragment = shop.test_client().get(f"/draws/{product.id}/entry", headers={"X-Visitor-Id": visitor(1)}
                                      ).get_data(as_text=True)
    assert "You are in the draw" in fragment and "Withdraw my entry" in fragment
    close_entries(product.id)
    run_draw(product.id)
    drawn = client.get(f"/api/draws/{product.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Check the draw" in drawn
    assert client.get(f"/products/{product.id}/draw").status_code == 200
    outcomes = {shop.test_client().get(f"/draws/{product.id}/entry", headers={"X-Visitor-Id": visitor(n)})
                .get_data(as_text=True).count("You won") for n in ids}
    assert outcomes == {0, 1}


# On Stripe (localstripe): manual capture, the card's fingerprint, cancellations, captures that fail


CARDS = ["4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222", "5200828282828210",
         "6011111111111117", "3056930009020004"]


class Bank:
    """The shopper's side of Stripe on localstripe: a card authorised as Stripe.js would, the events
    Stripe would send (signed as Stripe signs them), and what Stripe records."""

    def __init__(self, server, client):
        self.api = server.url
        self.auth = {"Authorization": f"Bearer {STRIPE_KEYS['STRIPE_SECRET_KEY']}"}
        self.client = client

    def call(self, method, path, **data):
        response = requests.request(method, f"{self.api}{path}", data=data, headers=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def authorise(self, intent_id, card):
        method = self.call("POST", "/v1/payment_methods", type="card", **{
            "card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2035", "card[cvc]": "123"})
        self.call("POST", f"/v1/payment_intents/{intent_id}", payment_method=method["id"])
        confirmed = self.call("POST", f"/v1/payment_intents/{intent_id}/confirm")
        assert confirmed["status"] == "requires_capture", confirmed
        return confirmed

    def intent(self, intent_id):
        return self.call("GET", f"/v1/payment_intents/{intent_id}")

    def captured(self, intent_id) -> int:
        """What was captured of the intent's charge, less what was refunded (localstripe keeps no
        amount_received: its charge says)."""
        charge = self.intent(intent_id).get("latest_charge")
        if isinstance(charge, str):
            charge = self.call("GET", f"/v1/charges/{charge}")
        if not charge or not charge.get("captured"):
            return 0
        return charge["amount"] - (charge.get("amount_refunded") or 0)

    def send(self, event_type, intent_id):
        """Stripe's event about the intent as it stands now, signed, to the shop's webhook."""
        import json

        event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type,
                 "data": {"object": self.intent(intent_id)}}
        payload = json.dumps(event).encode()
        answer = self.client.post("/api/webhooks/stripe", data=payload, content_type="application/json",
                                  headers={"Stripe-Signature": stripe_signature(payload)})
        assert answer.status_code == 200, answer.get_data(as_text=True)


@pytest.fixture
def stripe_draw(make_app, settings, localstripe, redis_server, kafka):
    """The shop on PostgreSQL with Stripe (localstripe), Redis, Kafka and a sweep every second."""
    from redis import Redis

    topic = f"payments-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic)
    Redis.from_url(redis_server.url).flushdb()
    shop_settings = {**settings, **STRIPE_KEYS, **NO_DOOR, "STRIPE_API_BASE": localstripe.url,
                     "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET, "REDIS_URL": redis_server.url,
                     "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "KAFKA_PAYMENTS_TOPIC": topic,
                     "SWEEP_INTERVAL_SECONDS": "1"}
    app = make_app(shop_settings)
    with app.app_context():
        yield app, shop_settings, Bank(localstripe, app.test_client())


def enter_on_stripe(client, bank, product_id, n, card, **choices) -> dict:
    answer = enter(client, product_id, n, **choices)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["clientSecret"].startswith(body["paymentIntentId"])
    intent = bank.intent(body["paymentIntentId"])
    assert intent["capture_method"] == "manual" and intent["amount"] == body["amount"]
    assert intent["metadata"]["drawEntryId"] == body["entryId"]
    if card:
        bank.authorise(body["paymentIntentId"], card)
        bank.send("payment_intent.amount_capturable_updated", body["paymentIntentId"])
    return body


def wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.remove()
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_on_stripe_only_winners_are_captured_a_failed_capture_passes_the_unit_on_and_the_rest_are_released(
        stripe_draw, worker):
    app, shop_settings, bank = stripe_draw
    client = app.test_client()
    product = draw_product(total=2, price=18000)
    entries = {n: enter_on_stripe(client, bank, product.id, n, CARDS[n]) for n in range(1, 5)}
    for n in range(1, 5):
        assert mine(client, product.id, n).get_json()["status"] == "entered"
    # The same card again, from another buyer: found only at authorisation, and cancelled before the draw.
    twin = enter_on_stripe(client, bank, product.id, 5, CARDS[1])
    assert mine(client, product.id, 5).get_json()["status"] == "duplicate"
    assert bank.intent(twin["paymentIntentId"])["status"] == "canceled"
    # Stripe cancels another's intent (its Dashboard, say): the entry is withdrawn.
    gone = enter_on_stripe(client, bank, product.id, 6, CARDS[6])
    bank.call("POST", f"/v1/payment_intents/{gone['paymentIntentId']}/cancel")
    bank.send("payment_intent.canceled", gone["paymentIntentId"])
    assert mine(client, product.id, 6).get_json()["status"] == "withdrawn"
    # Never authorised by the close: not in the draw, and its intent cancelled.
    unpaid = enter_on_stripe(client, bank, product.id, 0, None)

    # Whoever ranks first finds their authorisation gone at the draw (cancelled with no word to the shop):
    # their capture fails, they forfeit, and the unit goes on down the ranking.
    seed = db.session.execute(select(Draw.seed).where(Draw.product_id == product.id)).scalar_one()
    order = hmac_rank(seed.hex(), [entries[n]["entryId"] for n in entries])
    first = next(body for body in entries.values() if body["entryId"] == order[0])
    bank.call("POST", f"/v1/payment_intents/{first['paymentIntentId']}/cancel")

    close_entries(product.id)
    worker(shop_settings)
    wait_until(lambda: db.session.execute(select(Draw.walked_at).where(Draw.product_id == product.id)).scalar()
               and all(entry.released_at or entry.status == "won" for entry in stored_entries(product.id)
                       if entry.payment_intent_id), 60, "the worker's draw, and every authorisation settled")

    published = results(client, product.id)
    assert [row["entry_id"] for row in published] == order  # the worker ranked by the revealed seed
    assert [row["outcome"] for row in published] == ["forfeited", "won", "won", "lost"]
    by_entry = {body["entryId"]: body for body in [*entries.values(), twin, gone, unpaid]}
    intents = {entry_id: bank.intent(body["paymentIntentId"]) for entry_id, body in by_entry.items()}
    for row in published[1:3]:
        assert intents[row["entry_id"]]["status"] == "succeeded"
        assert bank.captured(by_entry[row["entry_id"]]["paymentIntentId"]) == 18000
    for entry_id in (order[0], order[3], twin["entryId"], gone["entryId"], unpaid["entryId"]):
        assert intents[entry_id]["status"] == "canceled", (entry_id, intents[entry_id]["status"])
    assert units(product.id).sold == 2 and units(product.id).held == 0
    for row in published[1:3]:
        assert db.session.get(Order, uuid.UUID(row["entry_id"])).paid_at is not None
    assert mine(client, product.id, 0).get_json()["status"] == "lost"


def test_a_draw_killed_mid_walk_and_run_again_captures_nobody_twice_and_sells_no_unit_twice(
        stripe_draw, monkeypatch):
    from storefront.payments import draws as walk_module

    app, _, bank = stripe_draw
    client = app.test_client()
    product = draw_product(sizes={"S": 2, "M": 1}, price=4000)
    sizes = sizes_of(product)
    entries = [enter_on_stripe(client, bank, product.id, n, CARDS[n], choice=sizes["S" if n % 2 else "M"],
                               backup=sizes["M" if n % 2 else "S"]) for n in range(1, 6)]
    close_entries(product.id)

    def killed(seconds_left: int = 60):
        """SystemExit lets the walker hand its lease back on the way out; a SIGKILLed one leaves it held."""
        db.session.remove()
        db.session.execute(update(Draw.__table__).where(Draw.__table__.c.product_id == product.id)
                           .values(walker="killed", walker_until=utcnow() + timedelta(seconds=seconds_left)))
        db.session.commit()

    def lapse_the_lease():  # a killed worker's lease runs out; the next walker takes over
        killed(seconds_left=-1)

    # Killed after its capture went through, before the shop wrote the sale down.
    real_settle = walk_module.settle_succeeded
    monkeypatch.setattr(walk_module, "settle_succeeded", lambda *args: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        walk_module.run_draw(product.id)
    monkeypatch.setattr(walk_module, "settle_succeeded", real_settle)
    killed()
    # A walker that finds another's lease still running leaves the draw to it.
    assert run_draw(product.id)["state"] == "walked_by_another"
    # Killed after choosing the next winner, before capturing it.
    lapse_the_lease()
    real_capture = walk_module._capture
    calls = []

    def capture_then_die(entry):
        calls.append(entry.id)
        if len(calls) == 2:
            raise SystemExit("killed")
        return real_capture(entry)

    monkeypatch.setattr(walk_module, "_capture", capture_then_die)
    with pytest.raises(SystemExit):
        walk_module.run_draw(product.id)
    monkeypatch.setattr(walk_module, "_capture", real_capture)
    lapse_the_lease()
    assert run_draw(product.id)["state"] == "drawn"
    assert run_draw(product.id)["state"] == "drawn"  # and again: nothing more happens

    published = results(client, product.id)
    assert [row["outcome"] for row in published].count("won") == 3
    for size, product_id in sizes.items():
        assert units(product_id).sold == {"S": 2, "M": 1}[size] and units(product_id).held == 0
    for body in entries:
        intent = bank.intent(body["paymentIntentId"])
        row = next(row for row in published if row["entry_id"] == body["entryId"])
        if row["outcome"] == "won":  # captured once, for its price, and nothing refunded
            assert intent["status"] == "succeeded" and bank.captured(body["paymentIntentId"]) == 4000
        else:
            assert intent["status"] == "canceled"
    holds = db.session.execute(select(Hold).where(Hold.product_id.in_(sizes.values()))).scalars().all()
    assert sorted(hold.status for hold in holds) == ["COMPLETED"] * 3


# The owner's side


def test_an_owner_sets_a_draw_up_in_the_admin_and_watches_entries_then_outcomes_in_the_live_view(
        make_app, settings):
    import re

    from tests.test_admin import PASSWORD, basic

    app = make_app({**settings, **NO_DOOR, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        admin = app.test_client()
        page = admin.get("/admin/products", headers=basic()).get_data(as_text=True)
        assert 'name="draw"' in page and 'name="entries_close"' in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        starts = (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
        form = {"csrf_token": token, "sku": "DRAW-A", "name": "Drawn shoe", "price": "180", "currency": "usd",
                "total": "1", "starts_at": starts, "queue": "no", "draw": "yes"}
        too_long = admin.post("/admin/products", headers=basic(), data={
            **form, "entries_close": (utcnow() + timedelta(days=5, minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")})
        assert too_long.status_code == 400 and 'data-field="entries_close"' in too_long.get_data(as_text=True)
        added = admin.post("/admin/products", headers=basic(), data={
            **form, "entries_close": (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")})
        assert added.status_code == 303, added.get_data(as_text=True)
        product_id = db.session.execute(select(Product.id).where(Product.sku == "DRAW-A")).scalar_one()

        shopper = app.test_client()
        entered(shopper, product_id, [1, 2, 3])
        live = admin.get(f"/admin/drops/{product_id}/live", headers=basic()).get_data(as_text=True)
        assert "The draw" in live and "Entries are open until" in live
        assert re.search(r"<th scope=\"row\">Drawn shoe</th>(<td>\d+</td>)*<td>3</td></tr>", live), live
        close_entries(product_id)
        run_draw(product_id)
        live = admin.get(f"/admin/drops/{product_id}/live", headers=basic()).get_data(as_text=True)
        assert "Drawn: $180.00 captured from the winners" in live and "Seed (revealed)" in live
        outcomes = re.search(r"drop-draw-outcomes.*?<tbody>(.*?)</tbody>", live, re.S).group(1)
        assert re.findall(r"<td>(\d+)</td>", outcomes) == ["0", "0", "1", "0", "2", "0", "0"]
        # The winner's order is an order like any other: to fulfil, in the CSV, shipped with its email.
        winner = next(entry for entry in stored_entries(product_id) if entry.status == "won")
        from storefront.orders.book import reference_of

        reference = reference_of(winner.id)
        assert reference in admin.get("/admin/orders", headers=basic()).get_data(as_text=True)
        assert reference in admin.get("/admin/orders.csv", headers=basic()).get_data(as_text=True)


# In Chromium: the Payment Element (Stripe.js's double, 3-D Secure in the page), the outcome, the check


def fill_entry(page, product_id, n, size=None, second=None):
    form = page.locator(f"#entry-{product_id} form.enter-draw")
    expect(form.locator("button[type=submit]")).to_be_enabled()
    if size:
        form.locator("[name=productId]").select_option(label=size)
    if second:
        form.locator("[name=backupProductId]").select_option(label=second)
    for name, value in delivery(n).items():
        if name == "country":
            form.locator("[name=country]").select_option(value)
        else:
            form.locator(f"[name={name}]").fill(value)
    form.locator("button[type=submit]").click()


def authorise_in_page(page, product_id, card):
    form = page.locator(f"#entry-{product_id} #authorise-form")
    expect(form.locator("button[type=submit]")).to_have_text("Authorise $120.00")
    expect(form.locator("button[type=submit]")).to_be_enabled()
    card_fields = page.frame_locator(f"#entry-{product_id} .payment-element iframe")
    card_fields.locator("[name=number]").fill(card)
    card_fields.locator("[name=exp]").fill("12 / 34")
    card_fields.locator("[name=cvc]").fill("123")
    form.locator("button[type=submit]").click()


def test_in_chromium_a_phone_enters_with_3d_secure_in_the_page_sees_the_outcome_and_checks_the_draw(
        store, card_shopper, make_app, settings, localstripe):
    from tests.test_browser_stripe import CARD_3DS, CARD_OK, no_csp_violations
    from tests.test_phone_width import NARROW, axe_violations, page_width

    product = draw_product(sizes={"EU 42": 1, "EU 43": 1}, price=12000, name="Lottery runner")
    url = store(**STRIPE_KEYS, STRIPE_API_BASE=localstripe.url, **NO_DOOR)
    phone = card_shopper(url)
    page = phone.visit(f"/products/{product.id}")
    page.set_viewport_size(NARROW)
    expect(page.locator(".draw-standing")).to_contain_text("Entries are open until")
    expect(page.locator(f"#entry-{product.id} form.enter-draw")).to_contain_text("You pay only if you win")
    assert page_width(page) <= 360 and axe_violations(page) == []
    phone.shot("draw-enter-phone")

    fill_entry(page, product.id, 1, size="EU 42", second="EU 43")
    expect(page.locator(f"#entry-{product.id} #authorise-form button[type=submit]")).to_be_enabled()
    expect(page.locator(f"#entry-{product.id}")).to_contain_text("One step left")
    phone.shot("draw-authorise-phone")
    authorise_in_page(page, product.id, CARD_3DS)
    challenge = page.frame_locator("iframe.stripe-double-3ds")
    expect(challenge.locator("#complete")).to_be_enabled()
    challenge.locator("#complete").dispatch_event("click")
    expect(page.locator(f"#entry-{product.id}")).to_contain_text("You are in the draw for EU 42, or else EU 43")
    assert page_width(page) <= 360 and axe_violations(page) == []
    phone.shot("draw-entered-phone")
    no_csp_violations(page)

    other = card_shopper(url)
    second_page = other.visit(f"/products/{product.id}")
    fill_entry(second_page, product.id, 2, size="EU 43")
    authorise_in_page(second_page, product.id, CARD_OK)
    expect(second_page.locator(f"#entry-{product.id}")).to_contain_text("You are in the draw")

    statuses = sorted(entry.status for entry in stored_entries(product.id))
    assert statuses == ["entered", "entered"]  # Stripe was asked on the way back from the Payment Element
    close_entries(product.id)
    stripe_app = make_app({**settings, **STRIPE_KEYS, "STRIPE_API_BASE": localstripe.url})
    with stripe_app.app_context():
        assert run_draw(product.id)["won"] == 2  # a size each, whichever ranks first
    expect(page.locator(f"#entry-{product.id}")).to_contain_text("You won: EU 4", timeout=15000)
    expect(page.locator(".draw-standing")).to_contain_text("Drawn.", timeout=15000)
    assert page_width(page) <= 360 and axe_violations(page) == []  # the revealed seed scrolls in its own box
    phone.shot("draw-won-phone")

    page.goto(f"{url}/products/{product.id}/draw")
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "holds")
    expect(page.locator("[data-mine]")).to_contain_text("rank ")
    expect(page.locator("[data-mine]")).to_contain_text(": won.")
    assert page_width(page) <= 360 and axe_violations(page) == []
    phone.shot("draw-checked-phone")


def test_the_command_line_check_agrees_with_the_draw_and_catches_a_result_moved(shop):
    from scripts.check_line import check_draw

    client = shop.test_client()
    product = draw_product(total=2)
    ids = entered(client, product.id, range(1, 6))
    close_entries(product.id)
    run_draw(product.id)
    standing = client.get(f"/api/draws/{product.id}").get_json()
    listing = client.get(f"/api/draws/{product.id}/results.csv").get_data(as_text=True)
    holds, said = check_draw(standing, listing, ids[3])
    assert holds, said
    assert said[-1].startswith(f"your entry {ids[3]}: rank ")
    rows = listing.splitlines()
    first, second = rows[1].split(",", 1)[1], rows[2].split(",", 1)[1]
    swapped = "\n".join([rows[0], f"1,{second}", f"2,{first}", *rows[3:]])  # the first two ranks traded
    assert not check_draw(standing, swapped)[0]
    assert not check_draw({**standing, "units": 1}, listing)[0]  # more winners than units


def test_on_embedded_defaults_the_worker_draws_at_the_close_with_the_demo_gateway(make_app, settings, tmp_path, worker):
    """SQLite, in-process jobs, the demo gateway: worker.py's sweep draws it, as scripts/start runs it."""
    import flask_migrate

    embedded = {"SECRET_KEY": settings["SECRET_KEY"], "DATABASE_URL": f"sqlite:///{tmp_path}/embedded.db",
                "DEMO_PAYMENTS": "1", "SWEEP_INTERVAL_SECONDS": "1", **NO_DOOR}
    app = make_app(embedded)
    with app.app_context():
        flask_migrate.upgrade()
        client = app.test_client()
        product = draw_product(total=1)
        entered(client, product.id, [1, 2, 3])
        close_entries(product.id)
        running = worker(embedded)
        try:
            wait_until(lambda: client.get(f"/api/draws/{product.id}").get_json()["state"] == "drawn", 30,
                       "the embedded worker's draw")
        except AssertionError:
            raise AssertionError(running.log_path.read_text()[-3000:]) from None
        outcomes = sorted(row["outcome"] for row in results(client, product.id))
        assert outcomes == ["lost", "lost", "won"] and units(product.id).sold == 1
        assert all(entry.notified_at is not None for entry in stored_entries(product.id))


def test_entering_asks_for_the_proof_of_work_while_it_is_on_and_a_paused_draw_takes_no_entry(make_app, settings):
    app = make_app({**settings, "QUEUE_PROOF_OF_WORK": "1000"})
    with app.app_context():
        client = app.test_client()
        product = draw_product(total=1)
        unsolved = enter(client, product.id, 1)
        assert unsolved.status_code == 400 and unsolved.get_json()["field"] == "altcha"
        db.session.execute(update(products_table).where(products_table.c.id == product.id).values(paused=True))
        db.session.commit()
        paused = enter(client, product.id, 1)
        assert paused.status_code == 409 and paused.get_json()["error"] == "paused"
        assert stored_entries(product.id) == []


def test_a_worker_sigkilled_mid_walk_and_another_started_sells_every_unit_once(make_app, settings, redis_server,
                                                                              worker):
    """worker.py itself, SIGKILLed while it walks a draw of 150 winners (the demo gateway's captures: its
    walk is the shop's own, step by step); once the dead walker's lease has run out, a new worker.py
    finishes the walk: every unit sold once, every winner's order paid once, nobody left selected."""
    from redis import Redis

    Redis.from_url(redis_server.url).flushdb()
    shop_settings = {**settings, **NO_DOOR, "REDIS_URL": redis_server.url, "SWEEP_INTERVAL_SECONDS": "1"}
    app = make_app(shop_settings)
    with app.app_context():
        client = app.test_client()
        product = draw_product(total=150)
        entered(client, product.id, range(1, 151))
        close_entries(product.id)
        first = worker(shop_settings)
        wait_until(lambda: (db.session.execute(select(Draw.walked_through).where(Draw.product_id == product.id))
                            .scalar() or 0) >= 5, 60, "the walk under way")
        first.kill()  # SIGKILL: no finally, no lease handed back
        walked = db.session.execute(select(Draw.walked_through, Draw.walked_at, Draw.walker)
                                    .where(Draw.product_id == product.id)).one()
        assert walked.walked_at is None and walked.walker is not None, walked  # killed mid-walk, its lease held
        db.session.execute(update(Draw.__table__).where(Draw.__table__.c.product_id == product.id)
                           .values(walker_until=utcnow() - timedelta(seconds=1)))  # as 60 s later
        db.session.commit()
        worker(shop_settings)
        wait_until(lambda: client.get(f"/api/draws/{product.id}").get_json()["state"] == "drawn", 60,
                   "the second worker's walk")
        assert units(product.id).sold == 150 and units(product.id).held == 0
        outcomes = Counter(row["outcome"] for row in results(client, product.id))
        assert outcomes == {"won": 150}
        holds = db.session.execute(select(Hold.status).where(Hold.product_id == product.id)).scalars().all()
        assert Counter(holds) == {"COMPLETED": 150}
        assert db.session.execute(select(func.count()).select_from(Order).where(Order.paid_at.is_not(None))
                                  ).scalar_one() == 150
        assert db.session.execute(select(func.count()).select_from(entries_table).where(
            entries_table.c.selected_at.is_not(None), entries_table.c.decided_at.is_(None))).scalar_one() == 0
