"""The HTML pages: catalogue, product, hold."""

import re

from storefront.listings.seed import seed_demo_catalogue
from tests.factories import lapse, make_product, visitor


def test_catalogue_lists_every_product_with_its_stock_and_buy_button(client, rendered):
    seed_demo_catalogue()
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert rendered == ["shop/index.html"]
    for name in ("Field notebook", "Enamel mug", "Merino beanie", "Signed print, 1 of 1"):
        assert name in html
    assert html.count('class="buy-button"') == 4
    assert "$120.00" in html
    # htmx and FingerprintJS come from our own static folder, never a CDN, under fingerprinted names.
    assert re.search(r'src="/static/vendor/htmx\.min\.[0-9a-f]{10}\.js"', html)
    assert re.search(r'src="/static/vendor/fp\.min\.[0-9a-f]{10}\.js"', html)
    assert "https://" not in html.split("<body>")[0]


def test_product_page_shows_live_stock_and_a_slot_for_the_visitors_hold(client, rendered):
    product = make_product(total=3, price=1999, name="Tea tin")
    html = client.get(f"/products/{product.id}").get_data(as_text=True)
    assert rendered[0] == "shop/product.html"
    assert "Tea tin" in html and "$19.99" in html
    assert f'id="stock-{product.id}"' in html and "<strong>3</strong> of 3 left" in html
    assert f'id="checkout-{product.id}"' in html
    assert 'hx-trigger="visitor-ready from:body"' in html


def test_sold_out_product_page_disables_buy(client):
    product = make_product(total=0)
    html = client.get(f"/products/{product.id}").get_data(as_text=True)
    assert "Sold out" in html
    assert 'class="buy-button" disabled' in html


def test_unknown_product_is_a_404_page(client, rendered):
    response = client.get("/products/9999")
    assert response.status_code == 404
    assert rendered[0] == "errors/page.html"
    assert "<html" in response.get_data(as_text=True)
    assert client.get("/products/not-a-number").status_code == 404


def test_reload_brings_the_visitors_live_hold_back_into_the_product_page(client, rendered):
    product = make_product(total=2)
    created = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    slot = f"/products/{product.id}/hold"

    response = client.get(slot, headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)})
    assert rendered[-1] == "shop/_hold.html"
    assert f'id="hold-{created["reservationId"]}"' in response.get_data(as_text=True)

    for someone_else in ({"X-Visitor-Id": visitor(2)}, {}):
        empty = client.get(slot, headers={"HX-Request": "true", **someone_else})
        assert empty.status_code == 204 and empty.get_data(as_text=True) == ""

    lapse(created["reservationId"])
    html = client.get(slot, headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)}).get_data(as_text=True)
    assert created["reservationId"] not in html


def test_hold_page_is_a_shell_that_loads_the_hold_for_its_own_visitor_only(client, rendered):
    product = make_product(total=2)
    client.get("/")  # a browser: the first page gives it its cookie
    created = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    url = f"/reservations/{created['reservationId']}"

    page = client.get(url)
    assert page.status_code == 200
    assert rendered[-1] == "shop/paying.html"
    assert created["reservationId"] in page.get_data(as_text=True)

    fragment = client.get(url, headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)})
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in html and "data-seconds-left=" in html
    assert 'id="stock-' not in html  # no out-of-band stock on the hold page: nothing to swap it into
    assert "HX-Request" in fragment.headers["Vary"]

    other = client.application.test_client().get(url, headers={"HX-Request": "true", "X-Visitor-Id": visitor(2)})
    assert other.status_code == 404
    assert "<html" not in other.get_data(as_text=True)


def test_hold_page_shows_the_outcome_once_the_hold_lapsed(client):
    product = make_product(total=2)
    created = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    lapse(created["reservationId"])
    html = client.get(
        f"/reservations/{created['reservationId']}", headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)}
    ).get_data(as_text=True)
    assert 'data-status="EXPIRED"' in html
    assert "went back on sale" in html


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_static_files_are_fingerprinted_and_cached_for_a_year(client):
    html = client.get("/").get_data(as_text=True)
    script = re.search(r'src="(/static/js/storefront\.[0-9a-f]{10}\.js)"', html).group(1)
    with client.get(script) as response:
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(script.replace(script[-13:-3], "0" * 10)).status_code == 404  # a stale digest
    with client.get("/static/js/storefront.js") as plain:
        assert plain.headers["Cache-Control"] == "public, max-age=3600"
    assert client.get("/static/../pyproject.toml").status_code == 404
