"""Managing the catalogue from scripts: product add and update, and a CSV import that
checks every row first and imports nothing when one is wrong."""

from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from tests.factories import DELIVERY, make_product, visitor, units


def products_by_sku():
    db.session.expire_all()
    return {p.sku: p for p in db.session.execute(select(Product)).scalars()}


def test_product_add_and_update(app, runner):
    added = runner.invoke(args=["product", "add", "--sku", "MUG-1", "--name", "Blue mug", "--price", "12.50",
                                "--total", "7", "--description", "Stoneware."])
    assert added.exit_code == 0, added.output
    mug = products_by_sku()["MUG-1"]
    assert (mug.name, mug.price, mug.currency, units(mug.id).total) == ("Blue mug", 1250, "usd", 7)
    assert f"Added product {mug.id}" in added.output

    updated = runner.invoke(args=["product", "update", str(mug.id), "--price", "9.99", "--name", "Mug"])
    assert updated.exit_code == 0, updated.output
    assert (products_by_sku()["MUG-1"].price, products_by_sku()["MUG-1"].name) == (999, "Mug")


def test_product_commands_refuse_bad_values_with_the_field_named(app, runner):
    for args, field in ((["--price", "12.345"], "price"), (["--price", "-1"], "price"), (["--total", "x"], "total"),
                        (["--sku", "no spaces"], "sku"), (["--currency", "dollars"], "currency")):
        values = {"--sku": "OK-1", "--name": "Thing", "--price": "1.00", "--total": "1"}
        values.update(dict(zip(args[::2], args[1::2])))
        result = runner.invoke(args=["product", "add", *[part for pair in values.items() for part in pair]])
        assert result.exit_code == 1 and f"{field}:" in result.output, result.output
    assert products_by_sku() == {}
    taken = make_product(sku="TAKEN")
    result = runner.invoke(args=["product", "add", "--sku", "TAKEN", "--name", "X", "--price", "1", "--total", "1"])
    assert result.exit_code == 1 and "sku: TAKEN is taken" in result.output
    assert runner.invoke(args=["product", "update", "999999", "--name", "X"]).exit_code == 1
    assert runner.invoke(args=["product", "update", str(taken.id)]).exit_code == 2  # nothing to change


def test_a_price_change_never_changes_a_hold_already_placed(app, client, runner):
    product = make_product(total=3, price=2000)
    held = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    assert runner.invoke(args=["product", "update", str(product.id), "--price", "35.00"]).exit_code == 0
    shown = client.get(f"/api/reservations/{held['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert shown.get_json()["amount"] == 2000
    later = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)}).get_json()
    assert later["amount"] == 3500


def test_the_total_never_goes_below_what_is_sold_and_held(app, client, runner):
    product = make_product(total=3)
    for n in (1, 2):
        client.post("/api/reservations", json={"productId": product.id, "userId": visitor(n)})
    result = runner.invoke(args=["product", "update", str(product.id), "--total", "1"])
    assert result.exit_code == 1 and "total: cannot go below 2" in result.output
    assert units(products_by_sku()[product.sku].id).total == 3


def test_a_catalogue_import_adds_and_updates_by_sku(app, runner, tmp_path):
    make_product(sku="KEEP-1", name="Old name", price=100, total=2)
    csv_file = tmp_path / "catalogue.csv"
    csv_file.write_text("sku,name,description,price,currency,total\n"
                        "KEEP-1,New name,Updated,3.00,usd,5\n"
                        "NEW-1,Scarf,Wool,45.00,eur,10\n", encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "1 added, 1 updated" in result.output
    found = products_by_sku()
    assert (found["KEEP-1"].name, found["KEEP-1"].price, units(found["KEEP-1"].id).total) == ("New name", 300, 5)
    assert (found["NEW-1"].price, found["NEW-1"].currency) == (4500, "eur")


def test_one_wrong_row_imports_nothing_and_names_row_and_field(app, client, runner, tmp_path):
    kept = make_product(sku="HELD-1", price=100, total=2)
    for n in (1, 2):
        client.post("/api/reservations", json={"productId": kept.id, "userId": visitor(n)})
    csv_file = tmp_path / "catalogue.csv"
    csv_file.write_text("sku,name,description,price,currency,total\n"
                        "GOOD-1,Fine,,1.00,usd,1\n"
                        "BAD-1,Broken,,1.005,usd,1\n"
                        "GOOD-2,Fine too,,2.00,usd,1\n"
                        "HELD-1,Too few,,1.00,usd,1\n", encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(csv_file)])
    assert result.exit_code == 1
    assert "row 3, price:" in result.output
    assert set(products_by_sku()) == {"HELD-1"}  # nothing imported

    csv_file.write_text("sku,name,description,price,currency,total\n"
                        "GOOD-1,Fine,,1.00,usd,1\n"
                        "HELD-1,Too few,,1.00,usd,1\n", encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(csv_file)])
    assert result.exit_code == 1 and "row 3, total: cannot go below 2" in result.output
    assert set(products_by_sku()) == {"HELD-1"}  # the good row was rolled back too
    assert units(products_by_sku()["HELD-1"].id).total == 2


HTMX = {"HX-Request": "true"}


def archive_checks(app, runner, product, live_hold_owner):
    """What archiving means, whichever database: checked on PostgreSQL and on SQLite."""
    client, pages = app.test_client(), app.test_client()  # a script, and a browser (pages give it a cookie)
    live = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(live_hold_owner)})
    assert live.status_code == 201
    result = runner.invoke(args=["product", "archive", str(product.id)])
    assert result.exit_code == 0 and "archived" in result.output
    db.session.expire_all()  # the test's session (shared with its requests) still has the product as made

    assert product.name not in pages.get("/").get_data(as_text=True)
    assert pages.get(f"/products/{product.id}").status_code == 404
    assert client.post("/api/reservations", json={"productId": product.id, "userId": visitor(7)}).status_code == 404
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 0
    assert client.post("/api/cart/items", json={"productId": product.id, "userId": visitor(7)}).status_code == 404
    # Its live hold still completes: the sale and the order keep the product.
    paid = client.post(f"/reservations/{live.get_json()['reservationId']}/demo-payment", data=DELIVERY,
                       headers={**HTMX, "X-Visitor-Id": visitor(live_hold_owner)})
    assert paid.status_code == 200 and "Paid: it is yours" in paid.get_data(as_text=True)
    orders = client.get("/orders", headers={**HTMX, "X-Visitor-Id": visitor(live_hold_owner)})
    assert product.name in orders.get_data(as_text=True)

    assert runner.invoke(args=["product", "archive", str(product.id), "--restore"]).exit_code == 0
    db.session.expire_all()
    assert product.name in pages.get("/").get_data(as_text=True)
    assert client.post("/api/reservations", json={"productId": product.id, "userId": visitor(7)}).status_code == 201
    assert runner.invoke(args=["product", "archive", "999999"]).exit_code == 1


def test_an_archived_product_leaves_the_catalogue_and_new_holds_but_its_live_hold_completes(app, runner):
    archive_checks(app, runner, make_product(total=3, name="Retired teapot"), 1)


def test_archiving_behaves_the_same_on_sqlite(embedded_app):
    archive_checks(embedded_app, embedded_app.test_cli_runner(), make_product(total=3, name="Retired teapot"), 1)


def test_a_checkout_with_an_archived_line_holds_nothing(app, runner):
    client = app.test_client()
    kept, retired = make_product(total=2, name="Kept"), make_product(total=2, name="Retired")
    for product in (kept, retired):
        client.post("/api/cart/items", json={"productId": product.id, "userId": visitor(1)})
    runner.invoke(args=["product", "archive", str(retired.id)])
    refused = client.post("/api/checkouts", json={"userId": visitor(1)})
    assert refused.status_code == 409
    assert refused.get_json()["items"] == [{"productId": retired.id, "available": 0}]


CATALOGUE = """sku,name,description,price,currency,total,starts_at,option_of,option
TEE,Drop tee,"Cotton, heavy.",30.00,usd,0,2031-05-01T10:00:00Z,,
TEE-S,,,30.00,usd,4,2031-05-01T10:00:00Z,TEE,S
TEE-M,,,32.50,usd,6,,TEE,M
CUP,Tea cup,Porcelain.,1500,jpy,9,,,
LAMP,"Desk lamp, brass",A lamp.,25.500,kwd,2,,,
"""


def product_rows():
    db.session.expire_all()
    columns = ("sku", "name", "description", "price", "currency", "starts_at", "option_of", "option_label", "image",
               "archived_at")
    return {p.sku: (tuple(getattr(p, c) for c in columns), units(p.id).total)
            for p in db.session.execute(select(Product)).scalars()}


def test_an_export_imported_back_changes_nothing_and_an_edit_changes_only_itself(app, runner, tmp_path):
    source = tmp_path / "catalogue.csv"
    source.write_text(CATALOGUE)
    assert runner.invoke(args=["catalog", "import", str(source)]).exit_code == 0
    before = product_rows()
    assert before["TEE-S"][0][1] == "Drop tee — S" and before["CUP"][0][3] == 1500 and before["LAMP"][0][3] == 25500

    exported = runner.invoke(args=["catalog", "export"])
    assert exported.exit_code == 0, exported.output
    lines = exported.output.splitlines()
    assert lines[0] == "sku,name,description,price,currency,total,starts_at,option_of,option,queue"
    assert [line.split(",")[0] for line in lines[1:]] == ["TEE", "TEE-S", "TEE-M", "CUP", "LAMP"]
    assert "1500,jpy,9" in exported.output and "25.500,kwd,2" in exported.output
    # An option's row repeats its product's start: the same moment, accepted on the way back.
    assert "TEE-M,Drop tee — M,,32.50,usd,6,2031-05-01T10:00:00Z,TEE,M,no" in lines

    (tmp_path / "export.csv").write_text(exported.output)
    again = runner.invoke(args=["catalog", "import", str(tmp_path / "export.csv")])
    assert again.exit_code == 0 and "0 added, 5 updated" in again.output, again.output
    assert product_rows() == before

    (tmp_path / "edited.csv").write_text(exported.output.replace("1500,jpy,9", "1800,jpy,9"))
    assert runner.invoke(args=["catalog", "import", str(tmp_path / "edited.csv")]).exit_code == 0
    after = product_rows()
    assert after["CUP"][0][3] == 1800
    assert {sku: row for sku, row in after.items() if sku != "CUP"} == {
        sku: row for sku, row in before.items() if sku != "CUP"}

    # A different start on an option's row is still refused, naming row and field.
    (tmp_path / "wrong.csv").write_text(exported.output.replace(
        "32.50,usd,6,2031-05-01T10:00:00Z", "32.50,usd,6,2031-06-01T10:00:00Z"))
    refused = runner.invoke(args=["catalog", "import", str(tmp_path / "wrong.csv")])
    assert refused.exit_code == 1 and "row 4, starts_at" in refused.output, refused.output


def test_the_admin_exports_the_same_csv(make_app, settings):
    import base64

    password = "the owner's own password"
    app = make_app({**settings, "ADMIN_PASSWORD": password})
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
    with app.app_context():
        make_product(sku="MUG", name="Mug", price=1250, total=3)
        page = client.get("/admin/products", headers=auth).get_data(as_text=True)
        assert "/admin/products.csv" in page
        exported = client.get("/admin/products.csv", headers=auth)
        assert exported.status_code == 200 and exported.mimetype == "text/csv"
        assert exported.get_data(as_text=True) == app.test_cli_runner().invoke(args=["catalog", "export"]).output
        assert client.get("/admin/products.csv").status_code == 401
