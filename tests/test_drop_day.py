"""The owner's drop day (issue 43): times typed and read in the shop's zone (SHOP_TIMEZONE, here
Europe/Paris, on both sides of its daylight-saving changes), through the CLI, the CSV and the admin's
picker; the live view's controls (pause, move the start, add stock, close the line), each written to
the admin log with its time and address; and the catalogue CSV imported from the admin, previewed
first and applied exactly as previewed."""

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from storefront.admin.log import AdminAction
from storefront.catalog.models import Product
from storefront.config import Config, ConfigError
from storefront.extensions import db
from storefront.shop_zone import UnreadableTime, read_moment, zoned_text
from storefront.inventory.jobs import advance_queues
from tests.factories import make_product, units, visitor
from tests.test_admin import PASSWORD, basic
from tests.test_queue import NO_DOOR, join, mine, queued_product, start_now

PARIS = ZoneInfo("Europe/Paris")
# Europe/Paris in 2027: clocks go forward on 28 March (02:00 → 03:00) and back on 31 October (03:00 → 02:00).
BEFORE_SPRING, AFTER_SPRING = "2027-03-27T10:00", "2027-03-28T10:00"  # +01:00, then +02:00
BEFORE_AUTUMN, AFTER_AUTUMN = "2027-10-30T10:00", "2027-10-31T10:00"  # +02:00, then +01:00
UTC_OF = {BEFORE_SPRING: datetime(2027, 3, 27, 9, tzinfo=UTC), AFTER_SPRING: datetime(2027, 3, 28, 8, tzinfo=UTC),
          BEFORE_AUTUMN: datetime(2027, 10, 30, 8, tzinfo=UTC), AFTER_AUTUMN: datetime(2027, 10, 31, 9, tzinfo=UTC)}


@pytest.fixture
def paris_app(make_app, settings):
    app = make_app({**settings, **NO_DOOR, "ADMIN_PASSWORD": PASSWORD, "SHOP_TIMEZONE": "Europe/Paris"})
    with app.app_context():
        yield app


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def starts_at(sku: str) -> datetime | None:
    db.session.expire_all()
    return db.session.execute(select(Product.starts_at).where(Product.sku == sku)).scalar_one()


def log_lines() -> list[tuple[str, str, str]]:
    db.session.expire_all()
    return [(action.action, action.detail, action.address)
            for action in db.session.execute(select(AdminAction).order_by(AdminAction.id)).scalars()]


@pytest.mark.parametrize("local", sorted(UTC_OF))
def test_a_local_time_is_read_in_the_shops_zone_on_both_sides_of_a_change(local):
    assert read_moment(local, PARIS) == UTC_OF[local]
    assert zoned_text(UTC_OF[local], PARIS).startswith(local)  # written back as typed, with its offset
    assert read_moment(zoned_text(UTC_OF[local], PARIS), PARIS) == UTC_OF[local]
    assert read_moment(f"{local}:00Z", PARIS) == datetime.fromisoformat(f"{local}:00+00:00")  # Z stays exact


def test_a_skipped_or_repeated_local_time_is_refused_naming_the_offsets_unless_it_is_the_one_set():
    with pytest.raises(UnreadableTime, match="does not happen in Europe/Paris"):
        read_moment("2027-03-28T02:30", PARIS)
    with pytest.raises(UnreadableTime, match=r"happens twice in Europe/Paris.*\+02:00 for the first or \+01:00"):
        read_moment("2027-10-31T02:30", PARIS)
    assert read_moment("2027-10-31T02:30+01:00", PARIS) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    # A form writes the start it shows back: the second 02:30 stays the second 02:30.
    second = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    assert read_moment("2027-10-31T02:30", PARIS, current=second) == second


def test_an_unknown_zone_stops_start_up_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="SHOP_TIMEZONE"):
        Config.from_env({"SHOP_TIMEZONE": "Europe/Atlantis"}, instance_path=tmp_path)
    assert Config.from_env({"SHOP_TIMEZONE": "Europe/Paris"}, instance_path=tmp_path).shop_timezone == "Europe/Paris"
    assert Config.from_env({}, instance_path=tmp_path).shop_timezone == "UTC"


def test_the_cli_reads_a_time_without_an_offset_in_the_shops_zone_and_says_it_back(paris_app):
    runner = paris_app.test_cli_runner()
    added = runner.invoke(args=["product", "add", "--sku", "SPRING", "--name", "Spring drop", "--price", "20",
                                "--total", "3", "--starts-at", BEFORE_SPRING])
    assert added.exit_code == 0, added.output
    assert "on sale from 2027-03-27T10:00:00+01:00 (Europe/Paris)" in added.output
    assert starts_at("SPRING") == UTC_OF[BEFORE_SPRING]
    moved = runner.invoke(args=["product", "update", "SPRING", "--starts-at", AFTER_SPRING])
    assert moved.exit_code == 0 and "2027-03-28T10:00:00+02:00 (Europe/Paris)" in moved.output
    assert starts_at("SPRING") == UTC_OF[AFTER_SPRING]
    exact = runner.invoke(args=["product", "update", "SPRING", "--starts-at", "2027-10-31T09:00:00Z"])
    assert exact.exit_code == 0 and starts_at("SPRING") == UTC_OF[AFTER_AUTUMN]
    gap = runner.invoke(args=["product", "update", "SPRING", "--starts-at", "2027-03-28T02:30"])
    assert gap.exit_code == 1 and "starts_at: 2027-03-28 02:30 does not happen in Europe/Paris" in gap.output
    assert starts_at("SPRING") == UTC_OF[AFTER_AUTUMN]


def test_the_csv_reads_local_times_in_the_shops_zone_and_exports_them_exactly(paris_app, tmp_path):
    runner = paris_app.test_cli_runner()
    file = tmp_path / "drops.csv"
    file.write_text("sku,name,price,total,starts_at\n"
                    f"AUTUMN-1,Before the change,20,1,{BEFORE_AUTUMN}\n"
                    f"AUTUMN-2,After the change,20,1,{AFTER_AUTUMN}\n"
                    "EXACT,Exact,20,1,2027-10-31T09:00:00Z\n", encoding="utf-8")
    imported = runner.invoke(args=["catalog", "import", str(file)])
    assert imported.exit_code == 0, imported.output
    assert starts_at("AUTUMN-1") == UTC_OF[BEFORE_AUTUMN] and starts_at("AUTUMN-2") == UTC_OF[AFTER_AUTUMN]
    assert starts_at("EXACT") == UTC_OF[AFTER_AUTUMN]
    exported = {row["sku"]: row for row in csv.DictReader(io.StringIO(
        runner.invoke(args=["catalog", "export"]).output))}
    assert exported["AUTUMN-1"]["starts_at"] == "2027-10-30T10:00:00+02:00"
    assert exported["AUTUMN-2"]["starts_at"] == "2027-10-31T10:00:00+01:00"
    (tmp_path / "back.csv").write_text(runner.invoke(args=["catalog", "export"]).output, encoding="utf-8")
    dry = runner.invoke(args=["catalog", "import", "--dry-run", str(tmp_path / "back.csv")])
    assert dry.exit_code == 0 and "would add 0 and change 0 products" in dry.output
    # A repeated hour in a file is refused naming its row, and nothing is imported.
    file.write_text("sku,name,price,total,starts_at\nNEW,New,20,1,2027-10-31T02:30\n", encoding="utf-8")
    refused = runner.invoke(args=["catalog", "import", str(file)])
    assert refused.exit_code == 1 and "row 2, starts_at: 2027-10-31 02:30 happens twice" in refused.output
    assert db.session.execute(select(Product).where(Product.sku == "NEW")).first() is None


def test_the_admins_picker_takes_and_shows_times_in_the_shops_zone(paris_app):
    client = paris_app.test_client()
    page = client.get("/admin/products", headers=basic()).get_data(as_text=True)
    assert 'type="datetime-local"' in page and "Europe/Paris" in page
    for sku, local in (("PICK-1", BEFORE_SPRING), ("PICK-2", AFTER_SPRING)):
        added = client.post("/admin/products", headers=basic(), data={
            "csrf_token": token_of(page), "sku": sku, "name": sku, "price": "20", "currency": "eur", "total": "1",
            "starts_at": local, "queue": "no"})
        assert added.status_code == 303, added.get_data(as_text=True)
        assert starts_at(sku) == UTC_OF[local]
    listing = client.get("/admin/products", headers=basic()).get_data(as_text=True)
    assert "Scheduled: Mar 27, 2027, 10:00\u202fAM Europe/Paris" in listing
    assert "Scheduled: Mar 28, 2027, 10:00\u202fAM Europe/Paris" in listing

    # A start in the hour the clocks repeat: its form shows 02:30, and saving it moves nothing.
    product = make_product(sku="REPEAT", starts_at=datetime(2027, 10, 31, 1, 30, tzinfo=UTC))
    db.session.commit()
    form = client.get(f"/admin/products/{product.id}", headers=basic()).get_data(as_text=True)
    assert 'value="2027-10-31T02:30"' in form
    saved = client.post(f"/admin/products/{product.id}", headers=basic(), data={
        "csrf_token": token_of(form), "sku": "REPEAT", "name": product.name, "price": "25.00", "currency": "usd",
        "total": "5", "starts_at": "2027-10-31T02:30", "queue": "no"})
    assert saved.status_code == 303, saved.get_data(as_text=True)
    assert starts_at("REPEAT") == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)


def test_every_state_an_owner_looks_for_is_said_in_the_list_on_the_product_and_in_the_live_view(paris_app):
    client = paris_app.test_client()
    scheduled = make_product(total=2, starts_at=UTC_OF[AFTER_SPRING])
    on_sale = make_product(total=2)
    paused = make_product(total=2, paused=True)
    sold_out = make_product(total=0)
    archived = make_product(total=2, archived_at=datetime.now(UTC))
    db.session.commit()
    listing = client.get("/admin/products", headers=basic()).get_data(as_text=True)
    states = dict(re.findall(r'<tr data-product="(\d+)".*?data-state="(\w+)"', listing, re.S))
    assert states == {str(scheduled.id): "scheduled", str(on_sale.id): "on_sale", str(paused.id): "paused",
                      str(sold_out.id): "sold_out", str(archived.id): "archived"}
    for product, state, said in ((scheduled, "scheduled", "Scheduled</strong> from Mar 28, 2027"),
                                 (paused, "paused", "Paused"), (sold_out, "sold_out", "Sold out"),
                                 (archived, "archived", "Archived")):
        page = client.get(f"/admin/products/{product.id}", headers=basic()).get_data(as_text=True)
        assert f'data-state="{state}"' in page and said in page
    live = client.get(f"/admin/drops/{scheduled.id}/live", headers=basic()).get_data(as_text=True)
    assert "<strong>Scheduled</strong>: it opens Mar 28, 2027, 10:00\u202fAM Europe/Paris" in live
    assert re.search(r"As of \d\d:\d\d:\d\d Europe/Paris", live)


def test_each_control_on_the_live_view_acts_and_leaves_a_line_in_the_log(paris_app):
    client = paris_app.test_client()  # the owner's browser
    shoppers = paris_app.test_client()  # scripts: one owner per visitor id
    product = queued_product(total=1, starts_in=timedelta(minutes=5), name="Control drop")
    db.session.commit()
    page = client.get(f"/admin/drops/{product.id}", headers=basic()).get_data(as_text=True)
    token = token_of(page)
    assert all(text in page for text in ("Pause the sale", "Move the start", "Add stock", "Close the line"))
    assert page.count("data-confirm=") >= 4  # each asks first

    # Move the start, in the shop's zone: five minutes later (its line stays open).
    later = (product.starts_at + timedelta(minutes=5)).astimezone(PARIS)
    moved = client.post(f"/admin/drops/{product.id}/start", headers=basic(),
                        data={"csrf_token": token, "starts_at": f"{later:%Y-%m-%dT%H:%M:%S}"})
    assert moved.status_code == 303
    db.session.expire_all()
    assert db.session.get(Product, product.id).starts_at == later.astimezone(UTC)

    # Shoppers join; then the start comes and the one unit is held by the first admitted.
    for n in (1, 2, 3):
        assert join(shoppers, product.id, n).status_code == 201
    start_now(product.id)
    assert shoppers.get(f"/api/queue/{product.id}").get_json()["state"] == "admitting"
    admitted = [n for n in (1, 2, 3) if mine(shoppers, product.id, n).get_json()["status"] == "admitted"]
    assert len(admitted) == 1

    # A start that has come cannot move: refused naming the field, and no log line.
    late = client.post(f"/admin/drops/{product.id}/start", headers=basic(),
                       data={"csrf_token": token, "starts_at": "2030-01-01T10:00"})
    assert late.status_code == 400 and 'data-field="starts_at"' in late.get_data(as_text=True)

    # Add stock: a unit more, free at once, and the line lets the next place in.
    added = client.post(f"/admin/drops/{product.id}/stock", headers=basic(),
                        data={"csrf_token": token, "item": str(product.id), "units": "1"})
    assert added.status_code == 303
    assert shoppers.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 2
    assert advance_queues() == 1  # the sweep's admission step (a poll runs it too, once a second)
    assert sum(mine(shoppers, product.id, n).get_json()["status"] == "admitted" for n in (1, 2, 3)) == 2
    bad = client.post(f"/admin/drops/{product.id}/stock", headers=basic(),
                      data={"csrf_token": token, "item": str(product.id), "units": "-3"})
    assert bad.status_code == 400 and units(product.id).total == 2

    # Pause: holds refused with 409 paused; resume.
    assert client.post(f"/admin/products/{product.id}/pause", headers=basic(),
                       data={"csrf_token": token, "back": "drop"}).status_code == 303
    admitted_one = next(n for n in (1, 2, 3) if mine(shoppers, product.id, n).get_json()["status"] == "admitted")
    refused = shoppers.post("/api/reservations", json={"productId": product.id, "userId": visitor(admitted_one)})
    assert refused.status_code == 409 and refused.get_json()["error"] == "paused"
    assert client.post(f"/admin/products/{product.id}/resume", headers=basic(),
                       data={"csrf_token": token, "back": "drop"}).status_code == 303

    # Close the line: the waiting place reads closed at once, and nobody joins any more.
    closed = client.post(f"/admin/drops/{product.id}/close-line", headers=basic(), data={"csrf_token": token})
    assert closed.status_code == 303
    waiting = [n for n in (1, 2, 3) if mine(shoppers, product.id, n).get_json()["status"] not in ("admitted",)]
    assert [mine(shoppers, product.id, n).get_json()["status"] for n in waiting] == ["closed"]
    assert shoppers.get(f"/api/queue/{product.id}").get_json()["state"] == "closed"
    refused_join = join(shoppers, product.id, 4)
    assert refused_join.status_code == 409 and refused_join.get_json()["error"] == "queue_closed"
    # An admitted place keeps its turn.
    assert shoppers.post("/api/reservations", json={"productId": product.id,
                                                  "userId": visitor(admitted_one)}).status_code == 201

    lines = log_lines()
    assert [action for action, _, _ in lines] == ["move_start", "add_stock", "pause", "resume", "close_line"]
    assert all(address == "127.0.0.1" for _, _, address in lines)
    assert "Europe/Paris" in lines[0][1] and "total 1 → 2" in lines[1][1] and "1 waiting place told" in lines[4][1]
    live = client.get(f"/admin/drops/{product.id}/live", headers=basic()).get_data(as_text=True)
    assert live.count('<tr data-action="') == 5 and "Closed the line" in live and "When (Europe/Paris)" in live
    # Without the form's token, no control acts.
    assert client.post(f"/admin/drops/{product.id}/stock", headers=basic(),
                       data={"item": str(product.id), "units": "5"}).status_code == 400
    assert units(product.id).total == 2


def _upload(client, token, text: str):
    return client.post("/admin/products/import", headers=basic(), content_type="multipart/form-data",
                       data={"csrf_token": token, "catalogue": (io.BytesIO(text.encode()), "catalogue.csv")})


def test_a_csv_uploaded_in_the_admin_is_previewed_then_applied_exactly_as_previewed(paris_app):
    client = paris_app.test_client()
    kept = make_product(sku="KEPT", name="Kept", total=4)
    edited = make_product(sku="EDITED", name="Edited", total=4)
    db.session.commit()
    token = token_of(client.get("/admin/products", headers=basic()).get_data(as_text=True))
    before = client.get("/admin/products.csv", headers=basic()).get_data(as_text=True)

    # A bad row: every problem named by row and field, and nothing changes.
    bad = _upload(client, token, "sku,name,price,total\nNEW-1,New,12.00,3\nNEW-2,Broken,twelve,3\nEDITED,Edited,25.00,-1\n")
    assert bad.status_code == 400
    problems = re.findall(r'<li data-row="(\d+)" data-field="(\w+)">', bad.get_data(as_text=True))
    assert problems == [("3", "price"), ("4", "total")]
    assert client.get("/admin/products.csv", headers=basic()).get_data(as_text=True) == before

    # A good file: the preview lists exactly what will change, and nothing has yet.
    rows = list(csv.DictReader(io.StringIO(before)))
    for row in rows:
        if row["sku"] == "EDITED":
            row.update(price="30.00", total="6", starts_at=AFTER_AUTUMN)
    rows.append({**rows[0], "sku": "ADDED", "name": "Added", "total": "2", "starts_at": ""})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    preview = _upload(client, token, out.getvalue())
    body = preview.get_data(as_text=True)
    assert preview.status_code == 200, body
    changed = set(re.findall(r'<tr data-sku="([\w-]+)" data-change="(\w+)" data-field="(\w+)">', body))
    assert {(sku, field) for sku, kind, field in changed if kind == "changed"} == {
        ("EDITED", "price"), ("EDITED", "total"), ("EDITED", "starts_at")}
    assert {sku for sku, kind, _ in changed if kind == "added"} == {"ADDED"}
    assert "2027-10-31T10:00:00+01:00" in body  # the new start, as the shop's zone reads it
    assert client.get("/admin/products.csv", headers=basic()).get_data(as_text=True) == before

    form = {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body)}
    applied = client.post("/admin/products/import/apply", headers=basic(), data=form)
    assert applied.status_code == 303
    db.session.expire_all()
    after = {p.sku: p for p in db.session.execute(select(Product)).scalars()}
    assert after["EDITED"].price == 3000 and units(edited.id).total == 6
    assert after["EDITED"].starts_at == UTC_OF[AFTER_AUTUMN]
    assert after["ADDED"].name == "Added" and after["KEPT"].price == kept.price and units(kept.id).total == 4
    assert [action for action, _, _ in log_lines()] == ["import"]

    # Applied again after the catalogue moved on: the preview no longer holds, so nothing is applied.
    again = client.post("/admin/products/import/apply", headers=basic(), data=form)
    assert again.status_code == 409 and "The catalogue changed since that preview" in again.get_data(as_text=True)
    assert [action for action, _, _ in log_lines()] == ["import"]


def test_a_file_that_is_not_utf8_text_is_refused_naming_the_file(paris_app):
    client = paris_app.test_client()
    token = token_of(client.get("/admin/products", headers=basic()).get_data(as_text=True))
    refused = client.post("/admin/products/import", headers=basic(), content_type="multipart/form-data",
                          data={"csrf_token": token, "catalogue": (io.BytesIO(b"sku,name\n\xff\xfe,x\n"), "a.csv")})
    assert refused.status_code == 400 and 'data-field="file"' in refused.get_data(as_text=True)


def test_in_chromium_the_owner_runs_the_day_from_the_live_view_and_a_waiting_shopper_is_told(
        make_app, settings, live_server, shopper):
    from playwright.sync_api import expect

    config = {**settings, **NO_DOOR, "ADMIN_PASSWORD": PASSWORD, "SHOP_TIMEZONE": "Europe/Paris",
              "STOCK_POLL_SECONDS": "1"}
    app = make_app(config)
    with app.app_context():
        product = queued_product(total=1, starts_in=timedelta(minutes=5), name="Day drop")
        db.session.commit()
        client = app.test_client()
        url = live_server(config, workers=1, threads=4).url
        owner = shopper(url, http_credentials={"username": "admin", "password": PASSWORD})
        asked = []
        owner.page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        admin = owner.visit(f"/admin/drops/{product.id}")
        control = admin.locator(".drop-control")

        # Postpone by five minutes (its line stays open), picked in the shop's zone.
        later = (product.starts_at + timedelta(minutes=5)).astimezone(PARIS)
        admin.fill("#move-start", f"{later:%Y-%m-%dT%H:%M}")
        control.locator("button", has_text="Move the start").click()
        expect(admin.locator(".notice-ok")).to_contain_text(f"The start is now {later:%b} {later.day}, {later.year}")
        db.session.expire_all()
        assert db.session.get(Product, product.id).starts_at == later.astimezone(UTC).replace(second=0)
        expect(admin.locator("#admin-log")).to_contain_text("Moved the start")
        expect(admin.locator(".drop-summary")).to_contain_text(f"{later:%-I:%M}\u202f{later:%p} Europe/Paris")

        # The start comes; two shoppers joined before it, a third (in Chromium) after: it waits, third.
        for n in (1, 2):
            assert join(client, product.id, n).status_code == 201
        start_now(product.id)
        assert client.get(f"/api/queue/{product.id}").get_json()["state"] == "admitting"
        buyer = shopper(url)
        page = buyer.visit(f"/products/{product.id}")
        page.locator("form.join-queue button").click()
        place = page.locator(f"#place-{product.id}")
        expect(place).to_contain_text("Your place: 3")

        # Pause: a hold by the admitted place is refused; resume.
        admin = owner.visit(f"/admin/drops/{product.id}")
        control.locator("button", has_text="Pause the sale").click()
        expect(admin.locator(".notice-ok")).to_contain_text("Paused")
        admitted = next(n for n in (1, 2) if mine(client, product.id, n).get_json()["status"] == "admitted")
        refused = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(admitted)})
        assert refused.status_code == 409 and refused.get_json()["error"] == "paused"
        control.locator("button", has_text="Resume the sale").click()
        expect(admin.locator(".notice-ok")).to_contain_text("Resumed")

        # Add stock: a unit more, free at once; the figures say so without a reload, the line moves on.
        admin.fill("#add-stock-units", "1")
        control.locator("button", has_text="Add stock").click()
        expect(admin.locator(".notice-ok")).to_contain_text("Added 1 to Day drop: 2 left now")
        expect(admin.locator(".drop-summary")).to_contain_text("2 of 2 left")
        expect(place).to_contain_text("You are next", timeout=10_000)

        # Close the line: the waiting shopper is told without reloading, and the log has every step.
        control.locator("button", has_text="Close the line").click()
        expect(admin.locator(".notice-ok")).to_contain_text("The line is closed: 1 waiting place told")
        expect(place).to_contain_text("The line is closed", timeout=10_000)
        expect(page.locator(f"#queue-{product.id}")).to_contain_text("The line is closed")
        expect(admin.locator("#admin-log tbody tr")).to_have_count(5)
        assert [action for action, _, _ in log_lines()] == ["move_start", "pause", "resume", "add_stock",
                                                            "close_line"]
        assert len(asked) == 5  # each control asked first
        owner.shot("drop-day-live-view")
