"""Two shoppers, one fingerprint: holds belong to a browser, and limits stop hoarders only.

The visitor id is a fingerprint, and identical devices share one, and one device's may change
between loads. Ownership is the browser's signed cookie (which keeps the first visitor id the
browser named, so a browser keeps what it has whatever it sends later); a client with no cookie is
one owner per visitor id. The hold limit counts per owner and per visitor id and address.
"""

import re

import pytest

from storefront.owners import COOKIE_NAME
from tests.factories import STRIPE_KEYS, make_product, visitor

SAME_PHONE = visitor("iphone15")
HTMX = {"HX-Request": "true"}


def browser(app, address="203.0.113.1", https=False):
    """A test client that behaves as a browser: its first page gives it the cookie."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    base = "https://shop.example" if https else "http://localhost"
    assert client.get("/", base_url=base).status_code == 200
    assert client.get_cookie(COOKIE_NAME, domain="shop.example" if https else "localhost") is not None
    return client


def hold(client, product_id, user=SAME_PHONE, **headers):
    return client.post("/api/reservations", json={"productId": product_id, "userId": user}, headers=headers)


def test_the_first_page_issues_a_signed_httponly_lax_cookie_and_nothing_else_does(app):
    client = app.test_client()
    api = client.get("/api/inventory/check/1")
    fragment = client.get("/", headers=HTMX)
    assert "Set-Cookie" not in api.headers and "Set-Cookie" not in fragment.headers

    page = client.get("/")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age", "expires"} <= flags and "secure" not in flags
    assert "SameSite=Lax" in cookie
    assert "Set-Cookie" not in client.get("/").headers  # never rotated

    secure = app.test_client().get("/", base_url="https://shop.example")
    assert "; Secure" in secure.headers["Set-Cookie"]


def test_two_browsers_with_one_fingerprint_each_get_their_own_hold(app):
    product = make_product(total=2)
    first, second = browser(app), browser(app, "198.51.100.7")
    a, b = hold(first, product.id), hold(second, product.id)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.get_json()["reservationId"] != b.get_json()["reservationId"]
    assert hold(first, product.id).get_json()["reservationId"] == a.get_json()["reservationId"]  # 200, the same
    # A script with the same visitor id but no cookie is an owner of its own.
    script = app.test_client()
    assert hold(script, product.id).status_code == 409  # both units are held
    assert script.get("/api/orders", headers={"X-Visitor-Id": SAME_PHONE}).get_json() == {"orders": []}


def test_another_browsers_hold_is_not_found_on_every_route(app):
    product = make_product(total=2)
    owner, intruder = browser(app), browser(app)
    held = hold(owner, product.id, **HTMX)
    assert held.status_code == 201
    reservation_id = re.search(r'id="hold-([0-9a-f-]+)"', held.get_data(as_text=True)).group(1)
    assert "demo-payment" in held.get_data(as_text=True)  # its payment form (Stripe's: the next test)
    same_visitor = {"X-Visitor-Id": SAME_PHONE}
    no_cookie = app.test_client()

    for client in (intruder, no_cookie):
        assert client.get(f"/api/reservations/{reservation_id}", headers=same_visitor).status_code == 404
        assert client.get(f"/api/reservations/{reservation_id}", headers={**HTMX, **same_visitor}).status_code == 404
        assert client.get(f"/reservations/{reservation_id}", headers={**HTMX, **same_visitor}).status_code == 404
        assert client.delete(f"/api/reservations/{reservation_id}", headers=same_visitor).status_code == 404
        assert client.post(f"/reservations/{reservation_id}/demo-payment",
                           headers={**HTMX, **same_visitor}).status_code == 404
        assert client.get(f"/products/{product.id}/hold", headers={**HTMX, **same_visitor}).status_code == 204
        assert client.get("/api/orders", headers=same_visitor).get_json() == {"orders": []}
        orders = client.get("/orders", headers={**HTMX, **same_visitor}).get_data(as_text=True)
        assert reservation_id not in orders
    mine = owner.get(f"/api/reservations/{reservation_id}", headers=same_visitor)
    assert mine.status_code == 200 and mine.get_json()["status"] == "PENDING"


def test_with_stripe_another_browser_never_receives_a_holds_client_secret(make_app, settings, localstripe):
    app = make_app({**settings, **STRIPE_KEYS, "STRIPE_API_BASE": localstripe.url})
    with app.app_context():
        product = make_product(total=2)
        owner, intruder, no_cookie = browser(app), browser(app, "198.51.100.7"), app.test_client()
        held = hold(owner, product.id, **HTMX).get_data(as_text=True)
        reservation_id = re.search(r'id="hold-([0-9a-f-]+)"', held).group(1)
        secret = re.search(r'data-client-secret="([^"]+)"', held).group(1)
        assert re.fullmatch(r"pi_\w+_secret_\w+", secret)
        same_visitor = {"X-Visitor-Id": SAME_PHONE}

        for client in (intruder, no_cookie):
            answers = [
                client.get(f"/api/reservations/{reservation_id}", headers=same_visitor),
                client.get(f"/api/reservations/{reservation_id}", headers={**HTMX, **same_visitor}),
                client.get(f"/reservations/{reservation_id}", headers={**HTMX, **same_visitor}),
                client.get(f"/reservations/{reservation_id}", headers=same_visitor),
                client.get(f"/products/{product.id}/hold", headers={**HTMX, **same_visitor}),
                client.get("/api/orders", headers=same_visitor),
                client.get("/orders", headers={**HTMX, **same_visitor}),
            ]
            assert all(secret not in answer.get_data(as_text=True) for answer in answers)
        # The other browser's own Buy on the same product: its own hold, with its own secret.
        theirs = hold(intruder, product.id, **HTMX)
        assert theirs.status_code == 201
        their_secret = re.search(r'data-client-secret="([^"]+)"', theirs.get_data(as_text=True)).group(1)
        assert their_secret != secret
        # The owner, reloading, gets the same hold and the same secret back.
        again = owner.get(f"/products/{product.id}/hold", headers={**HTMX, **same_visitor}).get_data(as_text=True)
        assert f'data-client-secret="{secret}"' in again


def test_a_forged_cookie_is_no_cookie(app):
    product = make_product(total=2)
    owner = browser(app)
    reservation_id = hold(owner, product.id).get_json()["reservationId"]
    forger = app.test_client()
    value = owner.get_cookie(COOKIE_NAME).value
    token, signature = value.rsplit(".", 1)
    forger.set_cookie(COOKIE_NAME, token + "." + signature[::-1])
    assert forger.get(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": SAME_PHONE}).status_code == 404


def test_a_browser_keeps_its_hold_cart_place_and_orders_when_its_fingerprint_changes(app):
    """Issue 42: a phone's fingerprint changed between loads and its cart lost a line."""
    product, other = make_product(total=3), make_product(total=3)
    phone = browser(app)
    first = hold(phone, product.id, visitor("first-load"))
    assert first.status_code == 201
    assert "Set-Cookie" in first.headers  # the cookie now keeps the first visitor id named
    assert phone.post("/api/cart/items", json={"productId": other.id, "userId": visitor("first-load")}).status_code == 200
    reservation_id = first.get_json()["reservationId"]

    later = {"X-Visitor-Id": visitor("second-load")}  # another fingerprint, the same browser
    shown = phone.get(f"/api/reservations/{reservation_id}", headers=later)
    assert shown.status_code == 200 and shown.get_json()["userId"] == visitor("first-load")
    again = hold(phone, product.id, visitor("second-load"))
    assert again.status_code == 200 and again.get_json()["reservationId"] == reservation_id  # no second hold
    assert [item["productId"] for item in phone.get("/api/cart", headers=later).get_json()["items"]] == [other.id]
    assert [o["reservationId"] for o in phone.get("/api/orders", headers=later).get_json()["orders"]] == [reservation_id]
    assert "Set-Cookie" not in phone.get("/api/cart", headers=later).headers  # kept once, never rotated

    # Another browser sending the first visitor id sees none of it, and a script with it neither.
    stranger = browser(app, "198.51.100.7")
    assert stranger.get(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": visitor("first-load")}).status_code == 404
    assert app.test_client().get(f"/api/reservations/{reservation_id}",
                                 headers={"X-Visitor-Id": visitor("first-load")}).status_code == 404
    assert phone.delete(f"/api/reservations/{reservation_id}", headers=later).status_code == 200


def test_a_browser_whose_cookie_kept_no_visitor_id_keeps_what_it_has(app):
    """A cookie from before the change (the secret alone) keeps the first visitor id it names now."""
    from storefront.owners import _signer

    product = make_product(total=2)
    old = app.test_client()
    with app.test_request_context():
        old.set_cookie(COOKIE_NAME, _signer().sign("an-old-browsers-secret").decode())
    made = hold(old, product.id, SAME_PHONE)
    assert made.status_code == 201
    reservation_id = made.get_json()["reservationId"]
    assert old.get(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": visitor("changed")}).status_code == 200


def test_carts_and_checkouts_belong_to_their_browser(app):
    product = make_product(total=5)
    first, second = browser(app), browser(app)
    assert first.post("/api/cart/items", json={"productId": product.id, "quantity": 2,
                                               "userId": SAME_PHONE}).status_code == 200
    assert second.get("/api/cart", headers={"X-Visitor-Id": SAME_PHONE}).get_json()["items"] == []
    placed = first.post("/api/checkouts", json={"userId": SAME_PHONE})
    assert placed.status_code == 201
    checkout_id = placed.get_json()["checkoutId"]
    assert second.get(f"/checkouts/{checkout_id}", headers={**HTMX, "X-Visitor-Id": SAME_PHONE}).status_code == 404
    assert second.post("/api/checkouts", json={"userId": SAME_PHONE}).get_json()["error"] == "empty_cart"


@pytest.fixture
def limited(make_app, settings):
    app = make_app({**settings, "MAX_HELD_UNITS_PER_VISITOR": "10"})
    with app.app_context():
        yield app


def test_shoppers_on_identical_phones_from_different_addresses_all_get_their_holds(limited):
    products = [make_product(total=50).id for _ in range(2)]
    phones = [browser(limited, f"198.51.100.{n}") for n in range(1, 13)]
    answers = [hold(phone, products[n % 2]).status_code for n, phone in enumerate(phones)]
    assert answers == [201] * 12


def test_one_persons_private_windows_stop_at_the_limit(limited):
    products = [make_product(total=50).id for _ in range(3)]
    windows = [browser(limited, "192.0.2.44") for _ in range(12)]
    answers = [hold(window, products[n % 3]) for n, window in enumerate(windows)]
    assert [a.status_code for a in answers] == [201] * 10 + [409, 409]
    assert {a.get_json()["error"] for a in answers[10:]} == {"hold_limit"}
    # A script from that address with the same visitor id counts in the same group.
    script = limited.test_client()
    script.environ_base["REMOTE_ADDR"] = "192.0.2.44"
    assert hold(script, products[0]).get_json()["error"] == "hold_limit"


def test_one_browser_cannot_pass_its_limit_by_changing_address(limited):
    products = [make_product(total=50).id for _ in range(4)]
    client = browser(limited, "192.0.2.1")
    for n in range(2):
        assert client.post("/api/reservations", json={"productId": products[n], "userId": SAME_PHONE,
                                                      "quantity": 5}).status_code == 201
    client.environ_base["REMOTE_ADDR"] = "192.0.2.2"
    refused = client.post("/api/reservations", json={"productId": products[2], "userId": SAME_PHONE})
    assert refused.status_code == 409 and refused.get_json()["error"] == "hold_limit"


def test_the_embedded_store_keeps_browsers_apart_too(embedded_app):
    product = make_product(total=3)
    first, second = browser(embedded_app), browser(embedded_app)
    a, b = hold(first, product.id), hold(second, product.id)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.get_json()["reservationId"] != b.get_json()["reservationId"]
    assert hold(first, product.id).status_code == 200
    assert second.get(f"/api/reservations/{a.get_json()['reservationId']}",
                      headers={"X-Visitor-Id": SAME_PHONE}).status_code == 404
