"""A product's start time (issue 21, the contract's *Drops*): before it, its stock check says
so, its Buy and Add to cart are off, and holds and checkouts answer 409 not_on_sale; from it
on, everything opens, decided by the shop's clock and never the browser's."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from storefront.catalog.models import Product
from storefront.clock import isoformat_z, utcnow
from storefront.extensions import db
from tests.factories import make_product, visitor, units


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, app, embedded_app):
    """The app on the suite's PostgreSQL, then the embedded one on SQLite."""
    chosen = app if request.param == "postgresql" else embedded_app
    with chosen.app_context():
        yield chosen


def starting(product_id: int, moment: datetime | None) -> None:
    db.session.execute(update(Product).where(Product.id == product_id).values(starts_at=moment))
    db.session.commit()


def hold(client, product_id, user=1):
    return client.post("/api/reservations", json={"productId": product_id, "userId": visitor(user)})


def test_before_its_start_a_product_says_when_and_takes_no_hold_or_checkout(shop):
    client = shop.test_client()
    product, other = make_product(total=3), make_product(total=3)
    start = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    starting(product.id, start)

    check = client.get(f"/api/inventory/check/{product.id}").get_json()
    assert check == {"productId": product.id, "available": 3, "total": 3, "inStock": True,
                     "onSale": False, "startsAt": isoformat_z(start)}
    refused = hold(client, product.id)
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "not_on_sale" and refused.get_json()["startsAt"] == isoformat_z(start)

    for product_id in (product.id, other.id):
        assert client.post("/api/cart/items", json={"productId": product_id, "userId": visitor(2)}).status_code == 200
    checkout = client.post("/api/checkouts", json={"userId": visitor(2)})
    assert checkout.status_code == 409
    assert checkout.get_json()["error"] == "not_on_sale"
    assert checkout.get_json()["items"] == [{"productId": product.id, "startsAt": isoformat_z(start)}]
    db.session.expire_all()
    assert units(product.id).held == 0 and units(other.id).held == 0

    browser = shop.test_client()  # a page visit gives a browser its cookie: another owner than the API's
    fragment = browser.get(f"/api/inventory/check/{product.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-on-sale="false"' in fragment and "Not on sale yet" in fragment and " disabled" in fragment
    # A moment, not the seconds left: the page counts it down on the shop's clock.
    assert f'<time class="countdown" datetime="{isoformat_z(start)}">' in fragment and "data-seconds-left" not in fragment
    page = browser.get(f"/products/{product.id}").get_data(as_text=True)
    assert "Not on sale yet" in page and '<button type="submit" class="secondary" disabled' in page

    starting(product.id, utcnow() - timedelta(seconds=1))  # the moment came
    check = client.get(f"/api/inventory/check/{product.id}").get_json()
    assert check["onSale"] is True
    assert hold(client, product.id).status_code == 201
    opened = client.post("/api/checkouts", json={"userId": visitor(2)})
    assert opened.status_code == 201, opened.get_json()


def test_an_unchanged_waiting_stock_is_a_304_until_the_start(shop):
    client = shop.test_client()
    product = make_product(total=2)
    starting(product.id, utcnow() + timedelta(hours=1))
    first = client.get(f"/api/inventory/check/{product.id}")
    assert client.get(f"/api/inventory/check/{product.id}",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    starting(product.id, utcnow() - timedelta(seconds=1))
    after = client.get(f"/api/inventory/check/{product.id}", headers={"If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200 and after.get_json()["onSale"] is True


def test_one_etag_is_one_body_while_a_start_counts_down_and_moves(shop):
    """The fragment a browser revalidates: its bytes do not change with the clock (a 304 is then the
    same body), and a start that moves is a new body with a new ETag (issue 42: a frozen countdown)."""
    client = shop.test_client()
    product = make_product(total=2)
    start = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    starting(product.id, start)
    url, htmx = f"/api/inventory/check/{product.id}", {"HX-Request": "true"}
    first = client.get(url, headers=htmx)
    time.sleep(1.1)
    again = client.get(url, headers=htmx)
    assert again.get_data() == first.get_data() and again.headers["ETag"] == first.headers["ETag"]
    assert client.get(url, headers={**htmx, "If-None-Match": first.headers["ETag"]}).status_code == 304

    starting(product.id, start + timedelta(minutes=10))  # postponed
    moved = client.get(url, headers={**htmx, "If-None-Match": first.headers["ETag"]})
    assert moved.status_code == 200 and moved.headers["ETag"] != first.headers["ETag"]
    assert isoformat_z(start + timedelta(minutes=10)) in moved.get_data(as_text=True)
    json_answer = client.get(url)
    assert json_answer.headers["ETag"] not in (first.headers["ETag"], moved.headers["ETag"])


def test_the_owner_sets_and_clears_the_start_from_the_cli_and_the_csv(app, runner, tmp_path):
    # A start a year ahead, whatever today is: always in the future, never a fixed date that passes.
    start = (utcnow() + timedelta(days=365)).replace(minute=0, second=0, microsecond=0)
    added = runner.invoke(args=["product", "add", "--sku", "SHOE-1", "--name", "Runner", "--price", "120.00",
                                "--total", "6", "--starts-at", isoformat_z(start)])
    assert added.exit_code == 0, added.output
    shoe = db.session.query(Product).filter_by(sku="SHOE-1").one()
    assert shoe.starts_at == start
    # The same moment written in another zone's offset: two hours later on the clock at +02:00.
    in_paris = (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"
    moved = runner.invoke(args=["product", "update", str(shoe.id), "--starts-at", in_paris])
    assert moved.exit_code == 0, moved.output
    db.session.expire_all()
    assert db.session.get(Product, shoe.id).starts_at == start
    assert runner.invoke(args=["product", "update", str(shoe.id), "--starts-at", ""]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Product, shoe.id).starts_at is None
    # A time without an offset is read in SHOP_TIMEZONE, UTC here (tests/test_drop_day.py: Europe/Paris).
    naive = runner.invoke(args=["product", "update", str(shoe.id), "--starts-at", start.strftime("%Y-%m-%dT%H:%M:%S")])
    assert naive.exit_code == 0 and f"on sale from {isoformat_z(start)} (UTC)" in naive.output
    db.session.expire_all()
    assert db.session.get(Product, shoe.id).starts_at == start

    catalogue = tmp_path / "drop.csv"
    catalogue.write_text("sku,name,price,total,starts_at\nCAP-1,Cap,20.00,3,2031-05-01T09:00:00Z\n"
                         "CAP-2,Cap two,20.00,3,not a time\n")
    refused = runner.invoke(args=["catalog", "import", str(catalogue)])
    assert refused.exit_code == 1 and "row 3" in refused.output and "starts_at" in refused.output
    assert db.session.query(Product).filter_by(sku="CAP-1").first() is None  # all or nothing
    catalogue.write_text("sku,name,price,total,starts_at\nCAP-1,Cap,20.00,3,2031-05-01T09:00:00Z\n")
    assert runner.invoke(args=["catalog", "import", str(catalogue)]).exit_code == 0
    assert db.session.query(Product).filter_by(sku="CAP-1").one().starts_at == datetime(2031, 5, 1, 9, tzinfo=UTC)
