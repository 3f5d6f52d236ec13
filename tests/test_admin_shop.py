"""The owner's side of the admin: products with photos (checked, cleaned, cached), archiving,
and orders to fulfil (paid first, mark shipped, CSV)."""

import csv
import io
import re
import uuid

import pytest
from PIL import Image
from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.stock import bucket_levels
from storefront.orders.book import reference_of
from tests.factories import DELIVERY, TEST_WEBHOOK_SECRET, intent_event, lapse, make_product, stripe_signature, visitor, units
from tests.test_admin import PASSWORD, basic
from tests import test_orders

HTMX = {"HX-Request": "true"}
inbox = test_orders.inbox  # the fixture: a real SMTP server (aiosmtpd)


@pytest.fixture
def owner_app(make_app, settings):
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET})
    with app.app_context():
        yield app


def form_token(client, path="/admin/products") -> str:
    page = client.get(path, headers=basic()).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def photo(kind="PNG", size=(40, 30), exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, (180, 90, 40))
    image.save(out, format=kind, **({"exif": exif} if exif else {}))
    return out.getvalue()


def product_form(token, **values):
    return {"csrf_token": token, "sku": "KETTLE-1", "name": "Copper kettle", "description": "Hand-hammered.",
            "price": "42.00", "currency": "usd", "total": "3", **values}


def products_by_sku():
    db.session.expire_all()
    return {p.sku: p for p in db.session.execute(select(Product)).scalars()}


def test_the_owner_adds_a_product_with_a_photo_and_shoppers_see_it_cached_for_a_year(owner_app):
    client = owner_app.test_client()
    token = form_token(client)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make; a phone also writes where the photo was taken
    created = client.post("/admin/products", headers=basic(), data={
        **product_form(token), "image": (io.BytesIO(photo("JPEG", (2400, 1200), exif.tobytes())), "kettle.jpg")})
    assert created.status_code == 303
    kettle = products_by_sku()["KETTLE-1"]
    assert (kettle.name, kettle.price, units(kettle.id).total) == ("Copper kettle", 4200, 3)
    assert re.fullmatch(r"uploads/products/[0-9a-f]{20}\.jpg", kettle.image)

    catalogue = client.get("/").get_data(as_text=True)
    image_url = re.search(r'<img src="(/media/products/[0-9a-f]{20}\.jpg)"', catalogue).group(1)
    served = client.get(image_url)
    body = served.get_data()
    served.close()
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert "max-age=31536000" in served.headers["Cache-Control"] and "immutable" in served.headers["Cache-Control"]
    stored = Image.open(io.BytesIO(body))
    assert stored.size == (1600, 800)  # scaled down
    assert not stored.getexif()  # its metadata dropped
    assert "Added Copper kettle." in client.get("/admin/products", headers=basic()).get_data(as_text=True)


@pytest.mark.parametrize(("upload", "message"), [
    ((b"#!/bin/sh\necho not a photo\n", "photo.png"), "not an image"),
    ((photo("GIF"), "animated.gif"), "JPEG, PNG or WebP"),
    ((b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "broken.png"), "not an image"),
])
def test_a_file_that_is_not_a_usable_photo_is_refused_and_nothing_is_added(owner_app, upload, message):
    client = owner_app.test_client()
    data, name = upload
    refused = client.post("/admin/products", headers=basic(),
                          data={**product_form(form_token(client)), "image": (io.BytesIO(data), name)})
    assert refused.status_code == 400
    body = refused.get_data(as_text=True)
    assert message in body and 'data-field="image"' in body
    assert 'value="Copper kettle"' in body  # the form comes back as it was filled
    assert products_by_sku() == {}


def test_a_photo_over_the_size_limit_is_refused_with_413(owner_app):
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    client = owner_app.test_client()
    too_big = FileStorage(io.BytesIO(b"\xff\xd8" + b"\0" * (6 * 1024 * 1024)), "huge.jpg")
    # Encoded here, so the test client sends bytes rather than spooling them to a file of its own.
    boundary, body = encode_multipart({**product_form(form_token(client)), "image": too_big})
    refused = client.post("/admin/products", headers=basic(), data=body,
                          content_type=f"multipart/form-data; boundary={boundary}")
    assert refused.status_code == 413
    assert products_by_sku() == {}


def test_product_forms_need_the_csrf_token_and_name_a_wrong_field(owner_app):
    client = owner_app.test_client()
    assert client.post("/admin/products", headers=basic(), data=product_form("forged")).status_code == 400
    refused = client.post("/admin/products", headers=basic(), data=product_form(form_token(client), price="4,20"))
    assert refused.status_code == 400 and 'data-field="price"' in refused.get_data(as_text=True)
    assert products_by_sku() == {}


def test_editing_a_price_leaves_placed_holds_alone_and_archiving_takes_it_off_sale(owner_app):
    client, shopper = owner_app.test_client(), owner_app.test_client()
    product = make_product(total=2, price=2500, name="Old lamp")
    held = shopper.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    token = form_token(client, f"/admin/products/{product.id}")
    saved = client.post(f"/admin/products/{product.id}", headers=basic(), data={
        "csrf_token": token, "sku": product.sku, "name": "Old lamp", "price": "30.00", "currency": "usd",
        "total": "0", "description": ""})
    assert saved.status_code == 400  # below the unit held
    assert 'data-field="total"' in saved.get_data(as_text=True)
    saved = client.post(f"/admin/products/{product.id}", headers=basic(), data={
        "csrf_token": token, "sku": product.sku, "name": "Old lamp", "price": "30.00", "currency": "usd",
        "total": "2", "description": ""})
    assert saved.status_code == 303
    assert shopper.get(f"/api/reservations/{held['reservationId']}",
                       headers={"X-Visitor-Id": visitor(1)}).get_json()["amount"] == 2500

    archived = client.post(f"/admin/products/{product.id}/archive", headers=basic(), data={"csrf_token": token})
    assert archived.status_code == 303
    db.session.expire_all()
    assert "Old lamp" not in shopper.get("/").get_data(as_text=True)
    listing = client.get("/admin/products", headers=basic()).get_data(as_text=True)
    assert "Archived" in listing and "Old lamp" in listing
    assert client.post(f"/admin/products/{product.id}/restore", headers=basic(),
                       data={"csrf_token": token}).status_code == 303
    db.session.expire_all()
    assert "Old lamp" in shopper.get("/").get_data(as_text=True)


def pay(client, product, user, **details):
    hold = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(user)}).get_json()
    paid = client.post(f"/reservations/{hold['reservationId']}/demo-payment", data={**DELIVERY, **details},
                       headers={**HTMX, "X-Visitor-Id": visitor(user)})
    assert paid.status_code == 200
    return hold


def test_orders_to_fulfil_come_first_and_shipping_one_shows_on_the_shoppers_order(owner_app):
    client, shopper = owner_app.test_client(), owner_app.test_client()  # the owner's browser, and a script
    first = pay(shopper, make_product(total=1, name="First thing"), 1, name="First Buyer")
    second = pay(shopper, make_product(total=1, name="Second thing"), 2, name="Second Buyer")
    page = client.get("/admin/orders", headers=basic()).get_data(as_text=True)
    references = re.findall(r'data-order="(SF-[A-Z2-7]{8})"', page)
    first_ref, second_ref = (reference_of(uuid.UUID(h["reservationId"])) for h in (first, second))
    assert references == [first_ref, second_ref]  # oldest payment first
    assert "2 to fulfil" in page and "12 Marylebone Road" in page and "ada@example.com" in page

    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    shipped = client.post(f"/admin/orders/{first['reservationId']}/ship", data={"tracking": "RM 1234 5678 GB"},
                          headers={**basic(), **HTMX, "X-CSRFToken": token})
    assert shipped.status_code == 200 and 'data-status="shipped"' in shipped.get_data(as_text=True)
    page = client.get("/admin/orders", headers=basic()).get_data(as_text=True)
    assert re.findall(r'data-order="(SF-[A-Z2-7]{8})"', page) == [second_ref, first_ref]  # still to do, first

    order = shopper.get(f"/orders/{first['reservationId']}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
    html = order.get_data(as_text=True)
    assert 'data-status="shipped"' in html and "RM 1234 5678 GB" in html

    # Bad input changes nothing; an unknown order is 404; shipping needs the token.
    assert client.post(f"/admin/orders/{second['reservationId']}/ship", data={"tracking": "<script>"},
                       headers={**basic(), **HTMX, "X-CSRFToken": token}).status_code == 400
    assert client.post(f"/admin/orders/{uuid.uuid4()}/ship", data={},
                       headers={**basic(), **HTMX, "X-CSRFToken": token}).status_code == 404
    assert client.post(f"/admin/orders/{second['reservationId']}/ship", data={},
                       headers={**basic(), **HTMX}).status_code == 400
    assert "2 to fulfil" not in client.get("/admin/orders", headers=basic()).get_data(as_text=True)


def test_an_unpaid_order_cannot_be_shipped_and_a_refunded_one_says_why(owner_app):
    client = owner_app.test_client()
    product = make_product(total=1, name="Last print")
    unpaid = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    client.post(f"/api/reservations/{unpaid['reservationId']}/delivery", json=DELIVERY,
                headers={"X-Visitor-Id": visitor(1)})
    token = re.search(r'"X-CSRFToken": "([^"]+)"',
                      client.get("/admin/orders", headers=basic()).get_data(as_text=True)).group(1)
    assert client.post(f"/admin/orders/{unpaid['reservationId']}/ship", data={},
                       headers={**basic(), **HTMX, "X-CSRFToken": token}).status_code == 409

    # It lapses, someone else buys the unit, and then its payment arrives: refunded.
    lapse(unpaid["reservationId"])
    pay(client, product, 2)
    payload = intent_event(unpaid)
    client.post("/api/webhooks/stripe", data=payload, headers={"Stripe-Signature": stripe_signature(payload)})
    page = client.get("/admin/orders", headers=basic()).get_data(as_text=True)
    row = page.split(f'data-order="{reference_of(uuid.UUID(unpaid["reservationId"]))}"')[1].split("</tr>")[0]
    assert 'data-status="refunded"' in row and "stock was gone" in row


def test_orders_export_as_csv_that_a_spreadsheet_cannot_mistake_for_formulas(owner_app):
    client = owner_app.test_client()
    hold = pay(client, make_product(total=1, name="Kettle", price=4200), 1, name="=HYPERLINK(\"x\")")
    exported = client.get("/admin/orders.csv", headers=basic())
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert exported.headers["Content-Disposition"].startswith('attachment; filename="orders-')
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert len(rows) == 1
    row = rows[0]
    assert row["reference"] == reference_of(uuid.UUID(hold["reservationId"]))
    assert (row["status"], row["items"], row["amount"], row["currency"], row["postal_code"]) == (
        "paid", "1 x Kettle", "42.00", "USD", "NW1 5LR")
    assert row["name"] == "'=HYPERLINK(\"x\")"
    assert client.get("/admin/orders.csv").status_code == 401


def test_a_products_page_shows_its_stock_bucket_by_bucket(owner_app):
    client, shopper = owner_app.test_client(), owner_app.test_client()
    product = make_product(total=5, buckets=2)  # 3 and 2
    assert shopper.post("/api/reservations", json={"productId": product.id, "userId": visitor(1),
                                                   "quantity": 2}).status_code == 201
    page = client.get(f"/admin/products/{product.id}", headers=basic()).get_data(as_text=True)
    assert "3 available of 5" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>", page)
    levels = bucket_levels(db.session.connection(), product.id)
    assert rows == [tuple(str(n) for n in (lv.bucket, lv.total, lv.held, lv.sold, lv.free)) for lv in levels]
    assert len(rows) == 2 and sum(int(row[2]) for row in rows) == 2 and sum(int(row[1]) for row in rows) == 5


def test_the_owner_pauses_and_resumes_a_drop_from_its_live_view_and_sets_a_limit_per_buyer(owner_app):
    client = owner_app.test_client()
    product = make_product(total=4, name="Paused drop")
    page = client.get(f"/admin/drops/{product.id}", headers=basic()).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert "Pause the sale" in page
    paused = client.post(f"/admin/products/{product.id}/pause", data={"csrf_token": token, "back": "drop"},
                         headers=basic())
    assert paused.status_code == 303 and paused.headers["Location"].endswith(f"/admin/drops/{product.id}")
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["paused"] is True
    refused = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)})
    assert refused.status_code == 409 and refused.get_json()["error"] == "paused"
    db.session.expire_all()  # the test's own session, shared with its requests, read the product before
    assert "Resume the sale" in client.get(f"/admin/drops/{product.id}", headers=basic()).get_data(as_text=True)
    # Without the form's token, nothing changes.
    assert client.post(f"/admin/products/{product.id}/resume", headers=basic()).status_code == 400
    assert client.post(f"/admin/products/{product.id}/resume", data={"csrf_token": token},
                       headers=basic()).status_code == 303
    assert "paused" not in client.get(f"/api/inventory/check/{product.id}").get_json()
    assert client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).status_code == 201

    db.session.expire_all()
    form = client.get(f"/admin/products/{product.id}", headers=basic()).get_data(as_text=True)
    assert 'name="per_buyer"' in form
    saved = client.post(f"/admin/products/{product.id}", headers=basic(), data={
        "csrf_token": token, "name": "Paused drop", "sku": product.sku, "price": "25.00", "currency": "usd",
        "total": "4", "per_buyer": "1", "queue": "no"})
    assert saved.status_code == 303, saved.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Product, product.id).per_buyer == 1
    second = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1), "quantity": 1})
    assert second.status_code == 200  # the same live hold back, not a second
    cart = client.post("/api/cart/items", json={"productId": product.id, "quantity": 2, "userId": visitor(1)})
    assert cart.status_code == 200
    assert client.post("/api/checkouts", json={"userId": visitor(1)}).get_json()["error"] == "buyer_limit"


def test_marking_an_order_shipped_emails_the_shopper_once_with_the_tracking_link(make_app, settings, inbox):
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD, "MAIL_URL": inbox.url, "SHOP_TIMEZONE": "Europe/Paris"})
    with app.app_context():
        client, shopper = app.test_client(), app.test_client()
        hold = pay(shopper, make_product(total=1, name="Copper kettle"), 1)
        assert len(inbox.messages) == 1  # the confirmation, its time in the shop's zone
        assert re.search(r"placed \w{3} \d+, \d{4}, .* Europe/Paris, is paid", inbox.messages[0].get_content())
        page = client.get("/admin/orders", headers=basic()).get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        link = "https://track.example/?id=RM12345678GB"

        def ship(tracking):
            return client.post(f"/admin/orders/{hold['reservationId']}/ship", data={"tracking": tracking},
                               headers={**basic(), **HTMX, "X-CSRFToken": token})

        assert ship(link).status_code == 200
        assert len(inbox.messages) == 2
        notice = inbox.messages[1]
        reference = reference_of(uuid.UUID(hold["reservationId"]))
        assert notice["To"] == "ada@example.com" and notice["Subject"].startswith(f"Order {reference}: on its way")
        assert "demo: no money taken" in notice["Subject"]  # the demo gateway took it
        body = notice.get_content()
        assert "Copper kettle" in body and link in body and "12 Marylebone Road" in body
        assert re.search(r"left us \w{3} \d+, \d{4}, .* Europe/Paris, to:", body)
        assert f"/orders/{hold['reservationId']}?key=" in body  # the order, in any browser

        assert ship("RM 1234 5678 GB").status_code == 200  # marked again: a new reference, no second email
        assert len(inbox.messages) == 2
        order = shopper.get(f"/orders/{hold['reservationId']}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
        assert "RM 1234 5678 GB" in order.get_data(as_text=True)


def test_the_products_list_says_where_each_sale_stands(owner_app):
    from datetime import timedelta

    from storefront.clock import utcnow

    client, shopper = owner_app.test_client(), owner_app.test_client()
    on_sale = make_product(total=2, name="On sale one")
    scheduled = make_product(total=2, name="Scheduled one", starts_at=utcnow() + timedelta(hours=3))
    paused = make_product(total=2, name="Paused one", paused=True)
    gone = make_product(total=1, name="Held one")
    assert shopper.post("/api/reservations", json={"productId": gone.id, "userId": visitor(1)}).status_code == 201
    archived = make_product(total=2, name="Archived one", archived_at=utcnow())
    tee = make_product(total=0, name="Tee")
    make_product(total=0, name="Tee — S", option_of=tee.id, option_label="S")
    make_product(total=1, name="Tee — M", option_of=tee.id, option_label="M")
    page = client.get("/admin/products", headers=basic()).get_data(as_text=True)
    states = dict(re.findall(r'<tr data-product="(\d+)".*?data-state="(\w+)"', page, re.S))
    assert {int(k): v for k, v in states.items() if int(k) in (on_sale.id, scheduled.id, paused.id, gone.id,
                                                                 archived.id, tee.id)} == {
        on_sale.id: "on_sale", scheduled.id: "scheduled", paused.id: "paused", gone.id: "sold_out",
        archived.id: "archived", tee.id: "on_sale"}  # a product with sizes sells while one of them does
    assert "Scheduled: " in page


def test_the_live_view_says_sold_out_once_the_last_unit_is_paid_and_paused_while_paused(owner_app):
    from datetime import timedelta

    from sqlalchemy import update as update_rows

    from storefront.clock import utcnow

    client, shopper = owner_app.test_client(), owner_app.test_client()
    product = make_product(total=1, name="Last one", starts_at=utcnow() - timedelta(minutes=1))
    live = f"/admin/drops/{product.id}/live"
    assert "<strong>On sale</strong>: 1 of 1 left" in client.get(live, headers={**basic(), **HTMX}).get_data(as_text=True)
    db.session.execute(update_rows(Product).where(Product.id == product.id).values(paused=True))
    db.session.commit()
    assert "<strong>Paused</strong>" in client.get(live, headers={**basic(), **HTMX}).get_data(as_text=True)
    db.session.execute(update_rows(Product).where(Product.id == product.id).values(paused=False))
    db.session.commit()
    pay(shopper, product, 1)
    html = client.get(live, headers={**basic(), **HTMX}).get_data(as_text=True)
    assert "<strong>Sold out</strong>" in html and "0 of 1 left" not in html
