"""The demo payment gateway: a newcomer buys end to end with no Stripe account."""


from storefront.listings.seed import seed_demo_catalogue
from tests.factories import DELIVERY, lapse, make_product, visitor

HTMX = {"HX-Request": "true"}


def test_embedded_mode_buy_then_pay_then_the_hold_page_shows_the_sale(embedded_app):
    client = embedded_app.test_client()
    seed_demo_catalogue()
    shopper = {"X-Visitor-Id": "newcomer-0001"}

    held = client.post("/api/reservations", data={"productId": 2, "userId": "newcomer-0001"}, headers=HTMX)
    assert held.status_code == 201
    html = held.get_data(as_text=True)
    assert "Test mode" in html and "demo-payment" in html
    reservation_id = html.split('id="hold-')[1].split('"')[0]

    paid = client.post(f"/reservations/{reservation_id}/demo-payment", data=DELIVERY, headers={**HTMX, **shopper})
    assert paid.status_code == 200
    assert 'data-status="COMPLETED"' in paid.get_data(as_text=True)

    page = client.get(f"/reservations/{reservation_id}", headers={**HTMX, **shopper})
    assert 'data-status="COMPLETED"' in page.get_data(as_text=True)
    api = client.get(f"/api/reservations/{reservation_id}", headers=shopper).get_json()
    assert api["status"] == "COMPLETED"
    assert api["paymentIntentId"].startswith("pi_demo_")
    assert client.get("/api/inventory/check/2").get_json() == {
        "productId": 2, "available": 9, "total": 10, "inStock": True}


def test_demo_payment_is_only_for_the_holds_own_visitor_and_only_while_it_is_live(client):
    product = make_product(total=2)
    held = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    url = f"/reservations/{held['reservationId']}/demo-payment"

    assert client.post(url, headers={**HTMX, "X-Visitor-Id": visitor(2)}).status_code == 404
    assert client.post(url, headers=HTMX).status_code == 400  # no visitor at all

    lapse(held["reservationId"])
    assert client.post(url, data=DELIVERY, headers={**HTMX, "X-Visitor-Id": visitor(1)}).status_code == 409
    shown = client.get(f"/api/reservations/{held['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert shown.get_json()["status"] == "EXPIRED"


def test_pages_carry_a_content_security_policy_without_third_parties_in_demo_mode(client):
    make_product(total=1)
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "stripe" not in policy
    assert "js.stripe.com" not in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_json_and_fragments_carry_a_policy_that_allows_nothing_and_pages_and_files_the_pages_own(client):
    product = make_product(total=1)
    page_policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in page_policy
    for answer in (client.get(f"/api/inventory/check/{product.id}"),
                   client.get(f"/api/inventory/check/{product.id}", headers=HTMX),
                   client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}),
                   client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)}),  # 409
                   client.post("/api/reservations", data={"productId": product.id, "userId": visitor(3)},
                               headers=HTMX),  # the sold-out fragment
                   client.get("/api/reservations/not-a-hold", headers={"X-Visitor-Id": visitor(1)})):  # 404
        assert answer.mimetype == "application/json" or answer.request.headers.get("HX-Request") == "true"
        assert answer.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    boosted = client.get(f"/products/{product.id}", headers={**HTMX, "HX-Boosted": "true"})  # a whole page
    assert boosted.mimetype == "text/html" and boosted.headers["Content-Security-Policy"] == page_policy
    with client.get("/static/js/storefront.js") as script:
        assert script.status_code == 200
        assert script.headers["Content-Security-Policy"] == page_policy
