"""Nobody corners a drop (issue 41): a hold never renews, one admission takes one hold of at most
QUEUE_UNITS_PER_PASS units by every way in, a refusal leaves the pass as it was, an owner whose pass
lapsed may join again behind everyone, a paused product takes nothing new, and a product's limit per
buyer holds. Each on PostgreSQL (the hold function) and on SQLite (the grant step alone)."""

from datetime import datetime, timedelta

from sqlalchemy import select, update

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.models import QueueEntry
from storefront.inventory.stock import set_total
from tests.factories import lapse, make_product, units, visitor
from tests import test_queue
from tests.test_queue import hold, join, mine, queued_product, standing, start_now

shop = test_queue.shop  # the fixture: the app on PostgreSQL, then on SQLite


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cart(client, n, product_id, quantity=1):
    answer = client.post("/api/cart/items", json={"productId": product_id, "quantity": quantity, "userId": visitor(n)})
    assert answer.status_code == 200, answer.get_json()


def checkout(client, n):
    return client.post("/api/checkouts", json={"userId": visitor(n)})


def test_a_checkout_reposted_never_moves_an_expiry_later(shop):
    client = shop.test_client()
    product = make_product(total=1)
    first = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    cart(client, 1, product.id)
    expiries = [moment(first["expiresAt"])]
    for _ in range(4):
        answer = checkout(client, 1)
        assert answer.status_code == 201, answer.get_json()
        expiries.append(moment(answer.get_json()["expiresAt"]))
    assert max(expiries) == expiries[0], f"the hold was renewed: {expiries}"
    again = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)})
    assert again.status_code == 200 and moment(again.get_json()["expiresAt"]) <= expiries[0]
    assert units(product.id).held == 1


def admitted_product(client, sizes=("S", "M", "L"), per_size=2, owners=(1,), **fields):
    """A queued product with options, started, and ``owners`` admitted."""
    product = queued_product(total=0, **fields)
    options = [make_product(total=per_size, option_of=product.id, option_label=label, starts_at=product.starts_at,
                            queued=True, **fields) for label in sizes]
    for n in owners:
        assert join(client, product.id, n).status_code == 201
    start_now(product.id)
    standing(client, product.id)
    for n in owners:
        assert mine(client, product.id, n).get_json()["status"] == "admitted"
    return product, options


def test_one_admission_takes_one_unit_by_every_way_in(shop):
    client = shop.test_client()
    product, (small, medium, large) = admitted_product(client)

    two = client.post("/api/reservations", json={"productId": small.id, "userId": visitor(1), "quantity": 2})
    assert two.status_code == 409 and two.get_json()["error"] == "hold_limit" and two.get_json()["per"] == "pass"
    assert mine(client, product.id, 1).get_json()["status"] == "admitted"  # the refusal left the pass as it was

    one = hold(client, small.id, 1)
    assert one.status_code == 201, one.get_json()
    assert mine(client, product.id, 1).get_json()["status"] == "held"
    # A second size by a hold: the pass is spent.
    assert hold(client, medium.id, 1).get_json()["error"] == "not_admitted"
    # Every size in a cart that takes over the hold: more than one pass's units.
    for option in (small, medium, large):
        cart(client, 1, option.id)
    every = checkout(client, 1)
    assert every.status_code == 409 and every.get_json()["per"] == "pass", every.get_json()
    # Another size alone: it takes over nothing, and the pass is spent.
    client.delete(f"/api/cart/items/{small.id}", json={"userId": visitor(1)})
    client.delete(f"/api/cart/items/{large.id}", json={"userId": visitor(1)})
    assert checkout(client, 1).get_json()["error"] == "not_admitted"
    # The same size in a cart: the checkout takes the hold over, as the same admission's one hold.
    client.delete(f"/api/cart/items/{medium.id}", json={"userId": visitor(1)})
    cart(client, 1, small.id)
    taken_over = checkout(client, 1)
    assert taken_over.status_code == 201, taken_over.get_json()
    assert moment(taken_over.get_json()["expiresAt"]) <= moment(one.get_json()["expiresAt"])
    held = [units(option.id).held for option in (small, medium, large)]
    assert held == [1, 0, 0]


def test_a_hold_refused_for_stock_leaves_the_pass_unspent(shop):
    client = shop.test_client()
    product, (small,) = admitted_product(client, sizes=("S",), per_size=2, owners=(1, 2))
    # Owner 2 takes a unit, the owner takes the other off sale; owner 1's pass is live, its hold refused for stock.
    assert hold(client, small.id, 2).status_code == 201
    set_total(db.session.connection(), small.id, 1)
    db.session.commit()
    refused = hold(client, small.id, 1)
    assert refused.status_code == 409 and refused.get_json()["error"] == "out_of_stock"
    assert db.session.execute(select(QueueEntry.held_at).where(QueueEntry.user_id == visitor(1))).scalar() is None


def test_an_owner_whose_pass_lapsed_unused_joins_again_behind_everyone(shop):
    client = shop.test_client()
    product, (small,) = admitted_product(client, sizes=("S",), per_size=1, owners=(1,))
    first = mine(client, product.id, 1).get_json()
    for n in (2, 3):
        assert join(client, product.id, n).status_code == 201
    db.session.execute(update(QueueEntry.__table__).where(QueueEntry.__table__.c.user_id == visitor(1))
                       .values(pass_expires_at=datetime.now().astimezone() - timedelta(seconds=1)))
    db.session.commit()
    assert mine(client, product.id, 1).get_json()["status"] == "expired"
    again = join(client, product.id, 1)
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["entryId"] != first["entryId"] and again.get_json()["position"] == 4
    assert join(client, product.id, 1).status_code == 200  # one current place
    # The lapsed place stays in the line's published list.
    assert db.session.execute(select(QueueEntry.id).where(QueueEntry.user_id == visitor(1))).scalars().all().__len__() == 2


def test_a_paused_product_takes_no_hold_checkout_or_place_and_resumes(shop):
    client = shop.test_client()
    product = make_product(total=3)
    kept = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    db.session.execute(update(Product.__table__).where(Product.__table__.c.id == product.id).values(paused=True))
    db.session.commit()
    refused = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)})
    assert refused.status_code == 409 and refused.get_json()["error"] == "paused"
    cart(client, 3, product.id)
    assert checkout(client, 3).get_json()["error"] == "paused"
    assert units(product.id).held == 1
    mine_again = client.get(f"/api/reservations/{kept['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert mine_again.get_json()["status"] == "PENDING"  # holds already given keep running
    db.session.execute(update(Product.__table__).where(Product.__table__.c.id == product.id).values(paused=False))
    db.session.commit()
    assert client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)}).status_code == 201


def test_a_buyer_gets_no_more_than_per_buyer_over_a_product_and_its_options(shop):
    client = shop.test_client()
    product = make_product(total=0, per_buyer=2)
    small = make_product(total=5, option_of=product.id, option_label="S", per_buyer=2)
    large = make_product(total=5, option_of=product.id, option_label="L", per_buyer=2)
    assert client.post("/api/reservations", json={"productId": small.id, "userId": visitor(1),
                                                  "quantity": 2}).status_code == 201
    over = client.post("/api/reservations", json={"productId": large.id, "userId": visitor(1)})
    assert over.status_code == 409 and over.get_json()["error"] == "buyer_limit", over.get_json()
    cart(client, 1, large.id)
    assert checkout(client, 1).get_json()["error"] == "buyer_limit"
    # A lapsed hold no longer counts.
    held = client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}).get_json()
    lapse(next(item for item in held["orders"] if item["productId"] == small.id)["reservationId"]
          if "orders" in held else held[0]["reservationId"])
    assert client.post("/api/reservations", json={"productId": large.id, "userId": visitor(1)}).status_code == 201


def test_a_buyer_is_known_by_email_and_address_at_delivery_and_at_settlement(shop):
    """Two owners (two visitor ids, no cookie) with one email, then one address spelt two ways: the
    second's delivery is refused naming the field, and a payment that arrives past the limit anyway
    (the same buyer paying twice at once) is refunded."""
    import uuid

    from storefront.inventory.models import Hold
    from storefront.orders.models import Order
    from storefront.payments.completion import settle as settle_payment
    from tests.factories import DELIVERY

    client = shop.test_client()
    product = make_product(total=5, per_buyer=1)

    def hold_with(n, details):
        placed = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(n)}).get_json()
        answer = client.post(f"/api/reservations/{placed['reservationId']}/delivery", json=details,
                             headers={"X-Visitor-Id": visitor(n)})
        return placed, answer

    form = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(9)},
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "One buyer may have 1 of" in form and "by the email and delivery address" in form
    first, saved = hold_with(1, DELIVERY)
    assert saved.status_code == 200, saved.get_json()
    same_email = {**DELIVERY, "email": "  " + DELIVERY["email"].upper() + " ", "line1": "1 Other Street"}
    second, refused = hold_with(2, same_email)
    assert refused.status_code == 409 and refused.get_json()["error"] == "buyer_limit"
    assert refused.get_json()["field"] == "email"
    same_address = {**DELIVERY, "email": "someone.else@example.com",
                    "line1": DELIVERY["line1"].upper().replace(" ", "  ") + ".", "postalCode": DELIVERY["postalCode"].lower()}
    third, refused = hold_with(3, same_address)
    assert refused.status_code == 409 and refused.get_json()["field"] == "address", refused.get_json()
    other = {**DELIVERY, "email": "third@example.com", "line1": "99 Elsewhere Lane"}
    fourth, fine = hold_with(4, other)
    assert fine.status_code == 200

    # The race: owner 4 changes its details to owner 1's after both delivered; both pay.
    db.session.execute(update(Order.__table__).where(Order.__table__.c.id == uuid.UUID(fourth["reservationId"]))
                       .values(buyer_email=DELIVERY["email"].lower()))
    db.session.commit()
    outcomes = []
    for placed in (first, fourth):
        with db.engine.begin() as conn:
            outcomes.append(settle_payment(conn, {
                "reservationId": placed["reservationId"], "paymentIntentId": f"pi_{placed['reservationId'][:8]}",
                "amount": placed["amount"], "currency": placed["currency"]}).outcome)
    assert outcomes == ["completed", "refund_due"]
    db.session.expire_all()
    assert db.session.get(Hold, uuid.UUID(fourth["reservationId"])).status == "REFUNDED"
    assert units(product.id).sold == 1 and units(product.id).held == 3  # owner 9's, 2's and 3's holds; 4's given back


def test_a_place_whose_hold_lapsed_reads_expired_and_may_join_again(shop):
    client = shop.test_client()
    product, (small,) = admitted_product(client, sizes=("S",), per_size=2, owners=(1,))
    held = hold(client, small.id, 1).get_json()
    assert mine(client, product.id, 1).get_json()["status"] == "held"
    lapse(held["reservationId"])  # not swept: the place reads the live state
    assert mine(client, product.id, 1).get_json()["status"] == "expired"
    again = join(client, product.id, 1)
    assert again.status_code == 201 and again.get_json()["status"] in ("waiting", "admitted")


def test_the_sweep_leaves_a_sold_out_drop_alone(shop):
    from storefront.clock import utcnow
    from storefront.inventory import queue
    from storefront.inventory.models import Queue

    client = shop.test_client()
    product, (small,) = admitted_product(client, sizes=("S",), per_size=1, owners=(1,))
    for n in (2, 3):
        join(client, product.id, n)
    with db.engine.connect() as conn:
        assert queue.queues_to_advance(conn, utcnow()) == [product.id]
    placed = hold(client, small.id, 1).get_json()
    from tests.factories import settle
    settle(placed["reservationId"])
    with db.engine.connect() as conn:
        assert queue.queues_to_advance(conn, utcnow()) == []  # sold out: nothing to admit, nothing written
    before = db.session.execute(select(Queue.advanced_at).where(Queue.product_id == product.id)).scalar()
    from storefront.inventory.jobs import advance_queues
    advance_queues()
    db.session.expire_all()
    assert db.session.execute(select(Queue.advanced_at).where(Queue.product_id == product.id)).scalar() == before
    assert {mine(client, product.id, n).get_json()["status"] for n in (2, 3)} == {"closed"}
