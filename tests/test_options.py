"""A product's options (issue 21, the contract's *Drops*): each option is its own stock item,
so every rule the shop has applies to it unchanged; the product page picks one, the catalogue
shows one card per product with the options left; the CLI, the CSV and the admin add them."""

from collections import Counter
from datetime import timedelta

import pytest

from storefront.listings.management import (CatalogRefused, InvalidField, add_product, archive_product, import_rows,
                                          update_product)
from storefront.catalog.models import Product
from storefront.clock import isoformat_z, utcnow
from storefront.extensions import db
from tests.factories import counters_against_holds, visitor, units
from tests.test_admin import PASSWORD, basic
from tests.test_admin_shop import form_token


def add(**values) -> int:
    with db.engine.begin() as conn:
        return add_product(conn, values)


def sneaker(sizes=(("EU 40", 2), ("EU 41", 2), ("EU 42", 1)), price="120.00") -> tuple[int, list[int]]:
    parent = add(sku="RUN", name="Runner", price=price, total="0")
    return parent, [add(option_of="RUN", option=label, sku=f"RUN-{label[-2:]}", total=str(total))
                    for label, total in sizes]


def hold(client, product_id, user, quantity=1):
    return client.post("/api/reservations", json={"productId": product_id, "userId": visitor(user),
                                                  "quantity": quantity})


def available(client, product_id) -> int:
    return client.get(f"/api/inventory/check/{product_id}").get_json()["available"]


def test_options_take_the_products_name_price_and_start_and_have_their_own_stock(client):
    parent, (forty, forty_one, forty_two) = sneaker()
    option = db.session.get(Product, forty_two)
    assert (option.name, option.price, option.currency, option.option_of, option.option_label) == (
        "Runner — EU 42", 12000, "usd", parent, "EU 42")
    assert hold(client, forty, 1, quantity=2).status_code == 201
    assert [available(client, pid) for pid in (forty, forty_one, forty_two)] == [0, 2, 1]  # the others untouched
    assert hold(client, forty, 2).status_code == 409
    for pid in (forty, forty_one, forty_two):
        assert counters_against_holds(pid) == []

    start = (utcnow() + timedelta(days=365)).replace(microsecond=0)  # a year ahead, whatever today is
    with db.engine.begin() as conn:  # renaming the product renames its options; a start time is theirs too
        update_product(conn, parent, {"name": "Road runner", "starts_at": isoformat_z(start)})
    db.session.expire_all()
    option = db.session.get(Product, forty_two)
    assert option.name == "Road runner — EU 42" and option.starts_at == start
    refused = hold(client, forty_two, 3)
    assert refused.status_code == 409 and refused.get_json()["error"] == "not_on_sale"
    with pytest.raises(InvalidField) as own_start, db.engine.begin() as conn:
        update_product(conn, forty_two, {"starts_at": isoformat_z(start + timedelta(days=1))})
    assert own_start.value.field == "starts_at"

    with db.engine.begin() as conn:  # archiving the product takes its options off sale too
        assert archive_product(conn, parent)
    assert hold(client, forty_one, 4).status_code == 404


def test_an_option_must_name_a_product_that_is_not_an_option(app):
    sneaker()
    for values, field in [({"option_of": "NOPE", "option": "S"}, "option_of"),
                          ({"option_of": "RUN-40", "option": "S"}, "option_of"),
                          ({"option_of": "RUN"}, "option"),
                          ({"option_of": "RUN", "option": "x" * 61}, "option")]:
        with pytest.raises(InvalidField) as refused:
            add(sku="RUN-X", total="1", **values)
        assert refused.value.field == field


def test_a_race_for_the_last_unit_of_one_option_ends_with_one_hold(app, settings, live_server):
    _, (forty, _, forty_two) = sneaker()
    from tests.test_holds_race import race_over

    servers = [live_server(settings, workers=1, threads=8) for _ in range(2)]
    responses = race_over(servers, [{"productId": forty_two, "userId": visitor(n)} for n in range(40)])
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 39}
    assert counters_against_holds(forty_two) == []
    assert available(app.test_client(), forty) == 2


def test_a_cart_with_two_options_of_one_product_checks_out_all_or_none(client):
    _, (forty, forty_one, _) = sneaker(sizes=(("EU 40", 1), ("EU 41", 1), ("EU 42", 1)))
    for pid in (forty, forty_one):
        assert client.post("/api/cart/items", json={"productId": pid, "userId": visitor(1)}).status_code == 200
    assert hold(client, forty_one, 2).status_code == 201  # someone else takes the last EU 41
    short = client.post("/api/checkouts", json={"userId": visitor(1)})
    assert short.status_code == 409
    assert short.get_json()["items"] == [{"productId": forty_one, "available": 0}]
    assert available(client, forty) == 1  # nothing held

    client.delete(f"/api/reservations/{hold(client, forty_one, 2).get_json()['reservationId']}",
                  headers={"X-Visitor-Id": visitor(2)})
    placed = client.post("/api/checkouts", json={"userId": visitor(1)})
    assert placed.status_code == 201
    assert sorted(r["productId"] for r in placed.get_json()["reservations"]) == [forty, forty_one]


def test_the_csv_import_of_a_product_with_options_is_all_or_nothing(app):
    header = {"sku": "", "name": "", "price": "", "total": "", "option_of": "", "option": ""}
    rows = [{**header, "sku": "TEE", "name": "Tee", "price": "30.00", "total": "0"},
            {**header, "sku": "TEE-S", "total": "4", "option_of": "TEE", "option": "S"},
            {**header, "sku": "TEE-M", "total": "4", "option_of": "TEE", "option": "M"},
            {**header, "sku": "TEE-L", "total": "4", "option_of": "TEA", "option": "L"}]
    with pytest.raises(CatalogRefused) as refused, db.engine.begin() as conn:
        import_rows(conn, rows)
    assert [(problem.row, problem.field) for problem in refused.value.problems] == [(5, "option_of")]
    assert db.session.query(Product).count() == 0

    rows[3]["option_of"] = "TEE"
    with db.engine.begin() as conn:
        assert import_rows(conn, rows) == (4, 0)
    options = db.session.query(Product).filter(Product.option_of.isnot(None)).order_by(Product.id).all()
    assert [(o.name, o.price, units(o.id).total) for o in options] == [
        ("Tee — S", 3000, 4), ("Tee — M", 3000, 4), ("Tee — L", 3000, 4)]


def test_the_product_page_picks_an_option_and_the_catalogue_shows_one_card(client):
    parent, (forty, forty_one, forty_two) = sneaker(sizes=(("EU 40", 0), ("EU 41", 2), ("EU 42", 1)))
    page = client.get(f"/products/{parent}").get_data(as_text=True)
    for pid in (forty, forty_one, forty_two):
        assert f'id="stock-{pid}"' in page and f'data-live-url="/api/inventory/check/{pid}"' in page
    assert 'class="option chosen" id="option-%d"' % forty_one in page  # the first one left
    sold_out = page.split(f'id="stock-{forty}"')[1].split("</form>")[0]
    assert "disabled" in sold_out and "Sold out" in sold_out
    chosen = client.get(f"/products/{forty_two}").get_data(as_text=True)
    assert 'class="option chosen" id="option-%d"' % forty_two in chosen and "<h1>Runner</h1>" in chosen

    catalogue = client.get("/").get_data(as_text=True)
    assert catalogue.count('class="product-card"') == 1
    assert "Left: EU 41, EU 42" in catalogue and f'id="stock-{forty}"' not in catalogue


def test_the_owner_adds_options_in_the_admin(make_app, settings):
    admin_app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    with admin_app.app_context():
        client = admin_app.test_client()
        parent = add(sku="CAP", name="Cap", price="20.00", total="0")
        token = form_token(client, f"/admin/products/{parent}")
        added = client.post(f"/admin/products/{parent}/options", headers=basic(), data={
            "csrf_token": token, "option": "Blue", "sku": "CAP-B", "total": "3", "price": ""})
        assert added.status_code == 303
        option = db.session.query(Product).filter_by(sku="CAP-B").one()
        assert (option.name, option.price, units(option.id).total, option.option_of) == ("Cap — Blue", 2000, 3, parent)
        page = client.get(f"/admin/products/{parent}", headers=basic()).get_data(as_text=True)
        assert "CAP-B" in page and "Blue" in page
        refused = client.post(f"/admin/products/{parent}/options", headers=basic(), data={
            "csrf_token": token, "option": "Red", "sku": "CAP-B", "total": "3"})
        assert refused.status_code == 400 and 'data-field="sku"' in refused.get_data(as_text=True)
