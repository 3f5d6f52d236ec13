"""A request another site's page makes a browser send is refused (403 cross_site) and changes
nothing: on every state-changing route, the shopper's and the admin's. Stripe's webhook and
scripts that send no browser headers are unaffected."""

import base64
import re
import uuid

import pytest

from storefront.extensions import db
from storefront.inventory.models import Hold
from tests.factories import DELIVERY, make_product, stripe_signature, intent_event, visitor

FOREIGN = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://attacker.example"},
    {"Origin": "null"},  # a sandboxed frame, or a page opened from a file
    {"Origin": "http://localhost:8000"},  # the shop's host on another port is another origin
    {"Origin": "https://localhost"},  # and so is the other scheme
]
OWN = [
    {},  # a script: no browser headers at all
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Origin": "http://localhost:80"},  # the default port, written out
    {"Sec-Fetch-Site": "none"},  # typed or bookmarked by the user
]
PASSWORD = "correct horse battery staple"


def available(client, product_id) -> int:
    return client.get(f"/api/inventory/check/{product_id}").get_json()["available"]


@pytest.mark.parametrize("headers", FOREIGN)
@pytest.mark.parametrize("body", ["json", "form"])
def test_a_cross_site_hold_is_refused_and_holds_nothing(app, client, headers, body):
    product = make_product(total=3)
    fields = {"productId": product.id, "userId": visitor(1)}
    answer = client.post("/api/reservations", headers=headers, **({"json": fields} if body == "json" else {"data": fields}))
    assert answer.status_code == 403
    assert answer.get_json()["error"] == "cross_site"
    assert available(client, product.id) == 3
    assert db.session.query(Hold).count() == 0


@pytest.mark.parametrize("headers", OWN)
def test_the_shops_own_pages_and_scripts_still_hold(app, client, headers):
    product = make_product(total=3)
    answer = client.post("/api/reservations", headers=headers, data={"productId": product.id, "userId": visitor(1)})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert available(client, product.id) == 2


def test_behind_a_trusted_proxy_the_origin_is_the_one_the_shopper_sees(make_app, settings):
    app = make_app({**settings, "TRUSTED_PROXY_COUNT": "1"})
    client = app.test_client()
    with app.app_context():
        product = make_product(total=3)
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example.com", "X-Forwarded-For": "203.0.113.9"}
        body = {"productId": product.id, "userId": visitor(1)}
        assert client.post("/api/reservations", json=body,
                           headers={**proxied, "Origin": "https://shop.example.com"}).status_code == 201
        refused = client.post("/api/reservations", json={**body, "userId": visitor(2)},
                              headers={**proxied, "Origin": "http://localhost"})
        assert refused.status_code == 403


def test_every_state_changing_route_refuses_a_cross_site_request(make_app, settings):
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    client = app.test_client()  # a script: its holds and cart are its visitor id's alone
    operator = app.test_client()  # a browser, with the admin's session and its CSRF token
    cross = {"Sec-Fetch-Site": "cross-site"}
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
    with app.app_context():
        product = make_product(total=5)
        hold = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
        reservation = hold["reservationId"]
        client.post("/api/cart/items", json={"productId": product.id, "quantity": 1, "userId": visitor(2)})
        page = operator.get("/admin/", headers=admin).get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        csrf = {"X-CSRFToken": token}

        attempts = [
            (client, "DELETE", f"/api/reservations/{reservation}?userId={visitor(1)}", {}),
            (client, "POST", f"/api/reservations/{reservation}/delivery?userId={visitor(1)}", {"json": DELIVERY}),
            (client, "POST", f"/reservations/{reservation}/demo-payment?userId={visitor(1)}", {"data": DELIVERY}),
            (client, "POST", "/api/cart/items", {"json": {"productId": product.id, "quantity": 2, "userId": visitor(2)}}),
            (client, "DELETE", f"/api/cart/items/{product.id}?userId={visitor(2)}", {}),
            (client, "POST", "/api/checkouts", {"json": {"userId": visitor(2)}}),
            (operator, "POST", f"/admin/products/{product.id}/total", {"data": {"total": "1"}, "headers": {**admin, **csrf}}),
        ]
        for sender, method, url, kwargs in attempts:
            headers = {**kwargs.pop("headers", {}), **cross}
            answer = sender.open(url, method=method, headers=headers, **kwargs)
            assert answer.status_code == 403, (method, url, answer.status_code)
            fragment = sender.open(url, method=method, headers={**headers, "HX-Request": "true"}, **kwargs)
            assert fragment.status_code == 403 and b"<html" not in fragment.data
            assert b'data-error="cross_site"' in fragment.data

        db.session.expire_all()
        assert db.session.get(Hold, uuid.UUID(reservation)).status == "PENDING"
        assert client.get(f"/api/cart?userId={visitor(2)}").get_json()["items"][0]["quantity"] == 1
        assert available(client, product.id) == 4  # the total stayed 5, one unit held
        # The same changes from the shop's own pages go through.
        assert operator.post(f"/admin/products/{product.id}/total", data={"total": "4"},
                           headers={**admin, **csrf, "Origin": "http://localhost"}).status_code == 200
        assert client.delete(f"/api/reservations/{reservation}?userId={visitor(1)}",
                             headers={"Origin": "http://localhost"}).status_code == 200


def test_stripes_webhook_is_judged_by_its_signature_alone(make_app, settings):
    from tests.factories import TEST_WEBHOOK_SECRET

    app = make_app({**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET})
    client = app.test_client()
    with app.app_context():
        product = make_product(total=2)
        hold = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
        payload = intent_event(hold, event_id="evt_cross_site_headers")
        answer = client.post("/api/webhooks/stripe", data=payload, headers={
            "Stripe-Signature": stripe_signature(payload), "Content-Type": "application/json",
            "Origin": "https://stripe.example", "Sec-Fetch-Site": "cross-site"})
        assert answer.status_code == 200
        db.session.expire_all()
        assert db.session.get(Hold, uuid.UUID(hold["reservationId"])).status == "COMPLETED"


def test_no_state_changing_route_is_left_out(make_app, settings):
    """Every POST, PUT, PATCH and DELETE the shop has (the queue's join, the draw's, every admin form,
    whatever is added next) answers a cross-site request 403 cross_site, before anything else: read
    from the app's own URL map, so that a new route cannot be forgotten. Stripe's webhook alone is
    judged by its signature."""
    from werkzeug.routing import AnyConverter

    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    client = app.test_client()
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
    checked = []
    with app.app_context():
        product = make_product(total=5)
        values = {"product_id": product.id, "reservation": str(uuid.uuid4()), "checkout": str(uuid.uuid4()),
                  "order_id": str(uuid.uuid4()), "job_id": "some-job", "filename": "x.png"}
        for rule in app.url_map.iter_rules():
            methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
            if not methods or rule.endpoint in ("payments.stripe_webhook", "static"):
                continue
            arguments = {}
            for name in rule.arguments:
                converter = rule._converters.get(name)
                arguments[name] = (sorted(converter.items)[0] if isinstance(converter, AnyConverter)
                                   else values.get(name, "1"))
            with app.test_request_context():
                from flask import url_for
                url = url_for(rule.endpoint, **arguments)
            for method in sorted(methods):
                answer = client.open(url, method=method, json={"userId": visitor(1)},
                                     headers={**admin, "Sec-Fetch-Site": "cross-site"})
                # A JSON route says it in JSON; a page's form route (the demo Pay button) with the error page.
                said = (answer.get_json() or {}).get("error") if answer.is_json else (
                    "cross_site" if "another site" in answer.get_data(as_text=True) else None)
                assert answer.status_code == 403 and said == "cross_site", (
                    method, url, answer.status_code, answer.get_data(as_text=True)[:300])
                checked.append((method, rule.rule))
    endpoints = {rule for _, rule in checked}
    assert "/api/queue/<product_id:product_id>/entries" in endpoints
    assert any(rule.startswith("/admin/") for rule in endpoints)
    assert len(checked) >= 15, checked
