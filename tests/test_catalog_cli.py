"""Managing the catalogue from scripts: product add and update, and a CSV import that
checks every row first and imports nothing when one is wrong."""

import csv
import io

from sqlalchemy import select, update

from storefront.catalog.models import Product
from storefront.extensions import db
from tests.factories import DELIVERY, make_product, units, visitor


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
    assert lines[0] == ("sku,name,description,price,currency,total,starts_at,option_of,option,queue,per_buyer,paused,"
                        "draw,entries_close")
    assert [line.split(",")[0] for line in lines[1:]] == ["TEE", "TEE-S", "TEE-M", "CUP", "LAMP"]
    assert "1500,jpy,9" in exported.output and "25.500,kwd,2" in exported.output
    # An option's row repeats its product's start: the same moment, accepted on the way back.
    assert "TEE-M,Drop tee — M,,32.50,usd,6,2031-05-01T10:00:00Z,TEE,M,no,,no,no," in lines

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


def test_an_owner_pauses_limits_and_moves_a_drop_by_id_or_sku_from_the_cli_and_a_csv(app, runner, tmp_path):
    from datetime import timedelta

    from storefront.clock import utcnow

    start = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    assert runner.invoke(args=["product", "add", "--sku", "JKT", "--name", "Jacket", "--price", "90.00",
                               "--total", "0", "--starts-at", start.isoformat(), "--per-buyer", "2"]).exit_code == 0
    assert runner.invoke(args=["product", "add", "--sku", "JKT-S", "--option-of", "JKT", "--option", "S",
                               "--total", "5"]).exit_code == 0
    rows = product_flags()
    assert rows["JKT"] == rows["JKT-S"] == (2, False)
    paused = runner.invoke(args=["product", "update", "JKT", "--pause"])  # by its SKU
    assert paused.exit_code == 0, paused.output
    assert product_flags()["JKT-S"] == (2, True)  # its option carries it
    jacket_id = db.session.execute(select(Product.id).where(Product.sku == "JKT")).scalar_one()
    assert runner.invoke(args=["product", "update", str(jacket_id), "--resume", "--per-buyer", ""]).exit_code == 0
    assert product_flags()["JKT-S"] == (None, False)
    unknown = runner.invoke(args=["product", "update", "NOPE", "--pause"])
    assert unknown.exit_code == 1 and "No product with id or SKU NOPE" in unknown.output
    wrong = runner.invoke(args=["product", "update", "JKT", "--per-buyer", "0"])
    assert wrong.exit_code == 1 and "per_buyer" in wrong.output

    # A start moves, earlier or later, until it has come; then it is history.
    later = start + timedelta(hours=1)
    assert runner.invoke(args=["product", "update", "JKT", "--starts-at", later.isoformat()]).exit_code == 0
    db.session.execute(update(Product.__table__).where(Product.__table__.c.sku.in_(["JKT", "JKT-S"]))
                       .values(starts_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    moved = runner.invoke(args=["product", "update", "JKT", "--starts-at", later.isoformat()])
    assert moved.exit_code == 1 and "starts_at" in moved.output and "has passed" in moved.output

    # The CSV: per_buyer and paused columns; an option's row may repeat them, never differ.
    (tmp_path / "day.csv").write_text("sku,name,price,total,per_buyer,paused\nJKT,Jacket,90.00,0,3,yes\n")
    assert runner.invoke(args=["catalog", "import", str(tmp_path / "day.csv")]).exit_code == 0
    assert product_flags()["JKT-S"] == (3, True)
    (tmp_path / "odd.csv").write_text("sku,option_of,option,total,per_buyer\nJKT-S,JKT,S,5,4\n")
    refused = runner.invoke(args=["catalog", "import", str(tmp_path / "odd.csv")])
    assert refused.exit_code == 1 and "row 2, per_buyer" in refused.output, refused.output


def product_flags():
    db.session.expire_all()
    return {p.sku: (p.per_buyer, p.paused) for p in db.session.execute(select(Product)).scalars()}


def test_the_catalogue_export_writes_no_formula_and_reads_its_own_cells_back(app, runner, tmp_path):
    (tmp_path / "evil.csv").write_text('sku,name,description,price,total\n'
                                       'EVIL,"=HYPERLINK(""http://x"",""y"")","-2+3",10.00,1\n')
    assert runner.invoke(args=["catalog", "import", str(tmp_path / "evil.csv")]).exit_code == 0
    exported = runner.invoke(args=["catalog", "export"]).output
    row = next(csv.DictReader(io.StringIO(exported)))
    assert row["name"].startswith("'=") and row["description"] == "'-2+3"
    (tmp_path / "back.csv").write_text(exported)
    assert runner.invoke(args=["catalog", "import", str(tmp_path / "back.csv")]).exit_code == 0
    db.session.expire_all()
    evil = db.session.execute(select(Product).where(Product.sku == "EVIL")).scalar_one()
    assert evil.name == '=HYPERLINK("http://x","y")' and evil.description == "-2+3"
