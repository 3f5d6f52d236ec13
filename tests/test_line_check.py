"""A line anyone can check (issue 41): the client draws its entry id and the shop keeps it; from the
start ``entries.csv`` lists every place; the order is recomputed from the revealed seed in the test,
by ``scripts/check_line.py`` and by the "Check the line" page in Chromium."""

import csv
import hashlib
import hmac
import io
import subprocess
import sys
import uuid
from datetime import timedelta

from scripts.check_line import check
from tests.test_queue import NO_DOOR, join, mine, queued_product, standing, start_now


def test_the_client_draws_its_entry_id_and_the_shop_keeps_it(make_app, settings):
    app = make_app({**settings, **NO_DOOR})
    client = app.test_client()
    with app.app_context():
        product = queued_product(total=3)
        drawn = str(uuid.uuid4())
        answer = join(client, product.id, 1, entryId=drawn)
        assert answer.status_code == 201 and answer.get_json()["entryId"] == drawn
        taken = join(client, product.id, 2, entryId=drawn)
        assert taken.status_code == 400 and taken.get_json()["field"] == "entryId"
        for malformed in ("not-a-uuid", drawn.upper(), "{" + drawn + "}", 7, str(uuid.UUID(int=0))):
            refused = join(client, product.id, 3, entryId=malformed)
            assert refused.status_code == 400 and refused.get_json()["field"] == "entryId", malformed
        assert mine(client, product.id, 3).status_code == 404  # nothing made by the refusals
        before = client.get(f"/api/queue/{product.id}/entries.csv")
        assert before.status_code == 409 and before.get_json()["error"] == "not_started"


def test_from_the_start_every_place_is_published_and_the_order_recomputes_from_the_seed(make_app, settings, tmp_path):
    app = make_app({**settings, **NO_DOOR})
    client = app.test_client()
    with app.app_context():
        product = queued_product(total=2)
        ids = {n: str(uuid.uuid4()) for n in range(1, 31)}
        for n, entry_id in ids.items():
            assert join(client, product.id, n, entryId=entry_id).status_code == 201
        start_now(product.id)
        late = join(client, product.id, 31)
        assert late.status_code == 201
        line = standing(client, product.id)
        listed = client.get(f"/api/queue/{product.id}/entries.csv")
        assert listed.status_code == 200 and listed.mimetype == "text/csv"
        assert listed.headers["Cache-Control"] == "public, max-age=0, s-maxage=1" and "Set-Cookie" not in listed.headers
        rows = list(csv.DictReader(io.StringIO(listed.get_data(as_text=True))))
        assert [int(row["position"]) for row in rows] == list(range(1, 32))
        seed = bytes.fromhex(line["seed"])
        assert hashlib.sha256(seed).hexdigest() == line["seedHash"]
        expected = sorted(ids.values(), key=lambda entry: hmac.new(seed, entry.encode(), hashlib.sha256).digest())
        assert [row["entry_id"] for row in rows[:30]] == expected
        assert {row["joined"] for row in rows[:30]} == {"before"}
        assert rows[30] == {"position": "31", "entry_id": late.get_json()["entryId"], "joined": "after"}

        holds, said = check(line, listed.get_data(as_text=True), ids[5])
        assert holds, said
        # Moving one place breaks the check: it can fail.
        swapped = [rows[1], rows[0], *rows[2:]]
        forged = "position,entry_id,joined\n" + "".join(
            f"{i},{row['entry_id']},{row['joined']}\n" for i, row in enumerate(swapped, start=1))
        assert check(line, forged)[0] is False
        assert check({**line, "seed": "00" * 32}, listed.get_data(as_text=True))[0] is False


def test_the_script_checks_a_running_shop(make_app, settings, live_server):
    app = make_app({**settings, **NO_DOOR})
    with app.app_context():
        product = queued_product(total=1)
        client = app.test_client()
        for n in range(1, 6):
            join(client, product.id, n)
        server = live_server({**settings, **NO_DOOR})
        waiting = subprocess.run([sys.executable, "scripts/check_line.py", server.url, str(product.id)],
                                 capture_output=True, text=True, timeout=60)
        assert waiting.returncode == 2, waiting.stdout + waiting.stderr
        start_now(product.id)
        done = subprocess.run([sys.executable, "scripts/check_line.py", server.url, str(product.id)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "the order holds" in done.stdout, done.stdout + done.stderr


def test_in_chromium_the_page_draws_the_entry_id_and_checks_the_line(make_app, settings, live_server, shopper):
    from playwright.sync_api import expect

    shop_settings = {**settings, **NO_DOOR, "STOCK_POLL_SECONDS": "1"}
    app = make_app(shop_settings)
    with app.app_context():
        product = queued_product(total=1, starts_in=timedelta(minutes=5), name="Checked tee")
        client = app.test_client()
        for n in range(1, 8):
            join(client, product.id, n)
        base_url = live_server(shop_settings).url
        browser = shopper(base_url)
        page = browser.visit(f"/products/{product.id}")
        drawn = page.locator("form.join-queue input[name=entryId]")
        expect(drawn).to_have_value(__import__("re").compile(r"^[0-9a-f-]{36}$"))
        entry_id = drawn.input_value()
        page.locator("form.join-queue button").click()
        expect(page.locator(f"#place-{product.id}")).to_contain_text("You are in the line")
        start_now(product.id)
        expect(page.locator(f"#queue-{product.id} a", has_text="Check the line")).to_have_count(1, timeout=10_000)
        check_page = browser.visit(f"/products/{product.id}/line")
        verdict = check_page.locator("[data-verdict]")
        expect(verdict).to_have_attribute("data-verdict", "holds", timeout=10_000)
        expect(check_page.locator("[data-mine]")).to_contain_text(f"Your entry {entry_id} is place")
        browser.shot("queue-line-checked")
        position = int(check_page.locator("[data-mine]").get_attribute("data-position"))
        listed = client.get(f"/api/queue/{product.id}/entries.csv").get_data(as_text=True)
        assert f"{position},{entry_id},before" in listed
