"""A drop's waiting room (issue 36, the contract's *Drops: the waiting room*): places drawn in a
random order fixed before anyone joined and checkable after, admission capped by stock, passes
that lapse, holds and checkouts that need an admitted place, and a door bots pay to pass."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import pytest
from altcha import solve_challenge_v1
from sqlalchemy import func, select, update

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.jobs import advance_queues
from storefront.inventory.models import QueueEntry
from tests.factories import lapse, make_product, settle, units, visitor

# The proof of work has its own tests below; elsewhere it is off, and one address may join often.
NO_DOOR = {"QUEUE_PROOF_OF_WORK": "0", "QUEUE_ENTRIES_PER_ADDRESS": "1000"}


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, make_app, settings, tmp_path):
    """The app on the suite's PostgreSQL, then on SQLite (the embedded database), without the door."""
    import flask_migrate

    if request.param == "postgresql":
        chosen = make_app({**settings, **NO_DOOR})
    else:
        chosen = make_app({"SECRET_KEY": settings["SECRET_KEY"], "DATABASE_URL": f"sqlite:///{tmp_path}/queue.db",
                           "DEMO_PAYMENTS": "1", "HOLD_RATE_LIMIT": "100000/minute", **NO_DOOR})
        with chosen.app_context():
            flask_migrate.upgrade()
    with chosen.app_context():
        yield chosen


@pytest.fixture
def pg_shop(make_app, settings):
    app = make_app({**settings, **NO_DOOR})
    with app.app_context():
        yield app


def queued_product(total: int, starts_in: timedelta = timedelta(minutes=5), **fields) -> Product:
    return make_product(total=total, starts_at=(utcnow() + starts_in).replace(microsecond=0), queued=True, **fields)


def start_now(product_id: int) -> None:
    """The drop's start comes: moved to a second ago (the product's and its options')."""
    start = utcnow() - timedelta(seconds=1)
    table = Product.__table__
    db.session.execute(update(table).where((table.c.id == product_id) | (table.c.option_of == product_id))
                       .values(starts_at=start))
    db.session.commit()


def join(client, product_id, n, address="127.0.0.1", **body):
    return client.post(f"/api/queue/{product_id}/entries", json={"userId": visitor(n), **body},
                       environ_base={"REMOTE_ADDR": address})


def mine(client, product_id, n):
    return client.get(f"/api/queue/{product_id}/entries/mine", headers={"X-Visitor-Id": visitor(n)})


def hold(client, product_id, n):
    return client.post("/api/reservations", json={"productId": product_id, "userId": visitor(n)})


def standing(client, product_id) -> dict:
    answer = client.get(f"/api/queue/{product_id}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def statuses(client, product_id, owners) -> dict[int, str]:
    return {n: mine(client, product_id, n).get_json()["status"] for n in owners}


def test_places_are_a_permutation_drawn_by_the_published_seed_and_later_joiners_queue_behind(shop):
    client = shop.test_client()
    product = queued_product(total=5)
    before = standing(client, product.id)
    assert before["state"] == "open" and before["seed"] is None and len(before["seedHash"]) == 64

    entries = {}
    for n in range(1, 51):
        answer = join(client, product.id, n)
        assert answer.status_code == 201, answer.get_json()
        body = answer.get_json()
        assert body["status"] == "waiting" and body["position"] is None and body["productId"] == product.id
        entries[n] = body["entryId"]
    again = join(client, product.id, 7)
    assert again.status_code == 200 and again.get_json()["entryId"] == entries[7]
    assert mine(client, product.id, 7).get_json()["position"] is None  # nobody's place is known before the start

    start_now(product.id)
    after = standing(client, product.id)
    seed = bytes.fromhex(after["seed"])
    assert hashlib.sha256(seed).hexdigest() == before["seedHash"] == after["seedHash"]
    positions = {n: mine(client, product.id, n).get_json()["position"] for n in entries}
    assert sorted(positions.values()) == list(range(1, 51))
    expected = sorted(entries, key=lambda n: hmac.new(seed, entries[n].encode(), hashlib.sha256).digest())
    assert [n for n, _ in sorted(positions.items(), key=lambda item: item[1])] == expected
    assert expected != sorted(entries), "the draw kept the order of arrival"

    late = join(client, product.id, 51)
    assert late.status_code == 201 and late.get_json()["position"] == 51
    assert join(client, product.id, 52).get_json()["position"] == 52

    # A straggler: a join whose host's clock still said "before the start", committed after the
    # ranking. The next step places it behind everyone, never leaves it without a place.
    from storefront.inventory import queue
    from storefront.owners import Owner

    with db.engine.begin() as conn:
        line = queue.queued_product(conn, product.id, 900)
        queue.join(conn, line, Owner(visitor(53), ""), "127.0.0.1", line.starts_at - timedelta(seconds=1),
                   queue.QueueSettings(900, 120, 1000))
    assert mine(client, product.id, 53).get_json()["position"] is None
    advance_queues()
    assert mine(client, product.id, 53).get_json()["position"] == 53


def test_admission_is_capped_by_stock_and_moves_on_when_a_hold_lapses_or_a_pass_goes_unused(shop):
    client = shop.test_client()
    product = queued_product(total=5)
    for n in range(1, 51):
        assert join(client, product.id, n).status_code == 201
    assert hold(client, product.id, 1).get_json()["error"] == "not_on_sale"
    start_now(product.id)
    line = standing(client, product.id)
    assert line["state"] == "admitting" and line["admittedThrough"] == 5 and line["length"] == 50
    order = sorted(range(1, 51), key=lambda n: mine(client, product.id, n).get_json()["position"])
    first, rest = order[:5], order[5:]
    assert set(statuses(client, product.id, first).values()) == {"admitted"}
    assert set(statuses(client, product.id, rest).values()) == {"waiting"}
    refused = hold(client, product.id, rest[0])
    assert refused.status_code == 409
    assert refused.get_json() | {"message": ""} == {"error": "not_admitted", "message": "", "productId": product.id,
                                                    "position": 6, "admittedThrough": 5}
    client.post("/api/cart/items", json={"productId": product.id, "quantity": 1, "userId": visitor(rest[1])})
    assert client.post("/api/checkouts", json={"userId": visitor(rest[1])}).get_json()["error"] == "not_admitted"

    held = [hold(client, product.id, n) for n in first[:4]]
    assert [answer.status_code for answer in held] == [201] * 4
    assert statuses(client, product.id, first) == {**{n: "held" for n in first[:4]}, first[4]: "admitted"}
    assert hold(client, product.id, first[0]).status_code == 200  # its own hold back, the pass not needed twice
    advance_queues()
    assert standing(client, product.id)["admittedThrough"] == 5  # 4 held + 1 pass = 5 units: nobody more

    # The fifth pass goes unused: it lapses and admits exactly the next place.
    db.session.execute(update(QueueEntry).where(QueueEntry.user_id == visitor(first[4]))
                       .values(pass_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    advance_queues()
    assert mine(client, product.id, first[4]).get_json()["status"] == "expired"
    assert hold(client, product.id, first[4]).get_json()["error"] == "not_admitted"
    assert statuses(client, product.id, rest[:2]) == {rest[0]: "admitted", rest[1]: "waiting"}

    # A hold lapses: its unit admits exactly the next place.
    lapse(held[0].get_json()["reservationId"])
    advance_queues()
    assert statuses(client, product.id, rest[:3]) == {rest[0]: "admitted", rest[1]: "admitted", rest[2]: "waiting"}
    waiting = mine(client, product.id, rest[2]).get_json()
    assert waiting["position"] == 8 and waiting["ahead"] == 0

    # The admitted two buy the last units; the four first holds are paid: sold out, every waiting place closed.
    for n in rest[:2]:
        assert hold(client, product.id, n).status_code == 201
    for answer in held[1:]:
        settle(answer.get_json()["reservationId"])
    paid = [h for h in db.session.execute(select(QueueEntry.user_id).where(QueueEntry.held_at.is_not(None)))]
    assert len(paid) == 6
    from storefront.inventory.models import Hold
    for pending in db.session.execute(select(Hold.id).where(Hold.product_id == product.id,
                                                            Hold.status == "PENDING")).scalars():
        settle(str(pending))
    assert units(product.id).sold == 5
    assert standing(client, product.id)["state"] == "sold_out"
    assert set(statuses(client, product.id, rest[2:]).values()) == {"closed"}
    assert join(client, product.id, 99).get_json()["error"] == "out_of_stock"


def test_a_queued_products_options_share_its_line(pg_shop):
    client = pg_shop.test_client()
    product = queued_product(total=0)
    small = make_product(total=1, option_of=product.id, option_label="S", starts_at=product.starts_at, queued=True)
    large = make_product(total=1, option_of=product.id, option_label="L", starts_at=product.starts_at, queued=True)
    for n in (1, 2, 3):
        assert join(client, small.id, n).get_json()["productId"] == product.id  # an option's id joins its product
    start_now(product.id)
    assert standing(client, large.id)["admittedThrough"] == 2  # two units over both sizes
    admitted = [n for n in (1, 2, 3) if mine(client, product.id, n).get_json()["status"] == "admitted"]
    assert [hold(client, small.id, admitted[0]).status_code, hold(client, large.id, admitted[1]).status_code] == [201, 201]
    assert hold(client, small.id, ({1, 2, 3} - set(admitted)).pop()).get_json()["error"] in ("not_admitted", "out_of_stock")


def test_the_room_opens_before_the_start_and_a_product_without_one_says_so(pg_shop):
    client = pg_shop.test_client()
    later = queued_product(total=3, starts_in=timedelta(hours=2))
    refused = join(client, later.id, 1)
    assert refused.status_code == 409 and refused.get_json()["error"] == "queue_not_open"
    line = standing(client, later.id)
    assert line["state"] == "not_open" and line["seedHash"] is None and refused.get_json()["opensAt"] == line["opensAt"]
    plain = make_product(total=3)
    assert join(client, plain.id, 1).get_json()["error"] == "no_queue"
    assert client.get(f"/api/queue/{plain.id}").status_code == 409
    assert join(client, 999_999, 1).status_code == 404
    assert mine(client, later.id, 1).status_code == 404
    assert join(client, later.id, 1, address="127.0.0.1").get_json()["error"] == "queue_not_open"
    assert db.session.execute(select(func.count()).select_from(QueueEntry)).scalar() == 0


def test_holds_race_across_processes_and_never_sell_more_than_the_stock(pg_shop, settings, live_server):
    from tests.test_holds_race import race_over

    client = pg_shop.test_client()
    product = queued_product(total=5)
    for n in range(1, 41):
        assert join(client, product.id, n).status_code == 201
    start_now(product.id)
    assert standing(client, product.id)["admittedThrough"] == 5
    admitted = {visitor(n) for n in range(1, 41) if mine(client, product.id, n).get_json()["status"] == "admitted"}
    assert len(admitted) == 5
    # Two gunicorns on the one database, the bodies dealt in turn: the race spans two processes
    # whatever the machine's load (one gunicorn's workers may leave a crowd to one of them).
    servers = [live_server({**settings, **NO_DOOR}, workers=2, threads=4) for _ in range(2)]
    answers = race_over(servers, [{"productId": product.id, "userId": visitor(n)} for n in range(1, 41)] * 2)
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(201) == 5 and codes.count(201) + codes.count(200) == 10  # each admitted owner: one hold
    assert {answer.json()["userId"] for answer in answers if answer.status_code == 201} == admitted
    # The rest: not admitted, or (once the five hold every unit) sold out, which the reads say first.
    refusals = [answer.json()["error"] for answer in answers if answer.status_code == 409]
    assert len(refusals) == 70 and set(refusals) <= {"not_admitted", "out_of_stock"}
    assert units(product.id).held == 5


def test_the_door_asks_a_single_use_proof_of_work_and_caps_places_per_address(make_app, settings):
    app = make_app({**settings, "QUEUE_PROOF_OF_WORK": "2000"})
    with app.app_context():
        client = app.test_client()
        product = queued_product(total=3)

        def solved() -> str:
            challenge = client.get("/api/queue/challenge")
            assert challenge.status_code == 200 and challenge.headers["Cache-Control"] == "private, no-store"
            fields = challenge.get_json()
            assert set(fields) == {"algorithm", "challenge", "maxnumber", "salt", "signature"}
            assert fields["maxnumber"] == 2000
            solution = solve_challenge_v1(fields["challenge"], fields["salt"], fields["algorithm"], fields["maxnumber"])
            return base64.b64encode(json.dumps({**{k: fields[k] for k in ("algorithm", "challenge", "salt", "signature")},
                                                "number": solution.number}).encode()).decode()

        missing = join(client, product.id, 1)
        assert missing.status_code == 400 and missing.get_json()["field"] == "altcha"
        forged = base64.b64encode(json.dumps({"algorithm": "SHA-256", "challenge": "00" * 32, "number": 1,
                                              "salt": "abc&", "signature": "00" * 32}).encode()).decode()
        assert join(client, product.id, 1, altcha=forged).get_json()["field"] == "altcha"
        assert join(client, product.id, 1, altcha="not base64!").get_json()["field"] == "altcha"
        payload = solved()
        assert join(client, product.id, 1, altcha=payload).status_code == 201
        reused = join(client, product.id, 2, altcha=payload)
        assert reused.status_code == 400 and reused.get_json()["field"] == "altcha"
        assert join(client, product.id, 1).status_code == 200  # its own place again: no second price

        # One address: four places (QUEUE_ENTRIES_PER_ADDRESS), whatever visitor ids it sends.
        for n in (2, 3, 4):
            assert join(client, product.id, n, altcha=solved()).status_code == 201
        fifth = join(client, product.id, 5, altcha=solved())
        assert fifth.status_code == 429 and fifth.get_json()["error"] == "too_many_entries"
        assert join(client, product.id, 5, address="10.1.2.3", altcha=solved()).status_code == 201
        assert db.session.execute(select(func.count()).select_from(QueueEntry)).scalar() == 5


def test_a_place_is_its_owners_alone(pg_shop):
    client = pg_shop.test_client()
    product = queued_product(total=3)
    browser = pg_shop.test_client()
    browser.get("/")  # a browser: its secret cookie
    assert browser.post(f"/api/queue/{product.id}/entries", json={"userId": visitor(1)}).status_code == 201
    start_now(product.id)
    assert standing(client, product.id)["admittedThrough"] == 1
    # The same visitor id from a script (no cookie) is another owner: no place, no hold.
    stolen = hold(client, product.id, 1)
    assert stolen.status_code == 409 and stolen.get_json()["position"] is None
    assert mine(client, product.id, 1).status_code == 404
    # The script joins its own place, behind, and is admitted on its own.
    assert join(client, product.id, 1).get_json()["position"] == 2
    advance_queues()
    assert hold(client, product.id, 1).status_code == 201
    assert browser.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).status_code == 201
    assert uuid.UUID(mine(client, product.id, 1).get_json()["entryId"])


def test_the_shared_answer_is_the_same_for_everyone_and_private_ones_are_not_kept(pg_shop):
    product = queued_product(total=2, starts_in=timedelta(hours=1))  # its line opens in 45 minutes
    one, two = pg_shop.test_client(), pg_shop.test_client()
    one.get("/")
    one.set_cookie("storefront_tz", "Asia/Tokyo")
    first = one.get(f"/api/queue/{product.id}", headers={"Accept-Language": "de", "HX-Request": "true"})
    second = two.get(f"/api/queue/{product.id}", headers={"Accept-Language": "ja", "HX-Request": "true"})
    assert first.data == second.data and b'<time datetime="' in first.data and b'Z" class="starts-at">' in first.data
    assert first.headers["Cache-Control"] == "public, max-age=0, s-maxage=1"
    assert "Set-Cookie" not in first.headers and "HX-Request" in first.headers["Vary"]
    again = two.get(f"/api/queue/{product.id}", headers={"HX-Request": "true", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    db.session.execute(update(Product).where(Product.id == product.id)
                       .values(starts_at=utcnow() + timedelta(minutes=5)))  # the line opens
    db.session.commit()
    assert join(one, product.id, 1).headers["Cache-Control"] == "private, no-store"
    assert mine(one, product.id, 1).headers["Cache-Control"] == "private, no-store"


def test_an_owner_turns_the_line_on_from_the_cli_a_csv_or_the_admin(make_app, settings, tmp_path):
    from tests.test_admin import PASSWORD, basic
    from tests.test_admin_shop import form_token

    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        runner, client = app.test_cli_runner(), app.test_client()
        no_start = runner.invoke(args=["product", "add", "--sku", "Q-1", "--name", "Q", "--price", "10",
                                       "--total", "3", "--queue"])
        assert no_start.exit_code == 1 and "queue: a waiting room needs a start time" in no_start.output
        added = runner.invoke(args=["product", "add", "--sku", "Q-1", "--name", "Q", "--price", "10", "--total", "3",
                                    "--starts-at", "2030-01-01T10:00:00Z", "--queue"])
        assert added.exit_code == 0, added.output
        product = db.session.execute(select(Product).where(Product.sku == "Q-1")).scalar_one()
        assert product.queued
        assert runner.invoke(args=["product", "update", str(product.id), "--no-queue"]).exit_code == 0
        db.session.refresh(product)
        assert not product.queued

        source = tmp_path / "drop.csv"
        source.write_text("sku,name,price,total,starts_at,option_of,option,queue\n"
                          "Q-2,Tee,20,0,2030-01-01T10:00:00Z,,,yes\n"
                          "Q-2-S,,,2,,Q-2,S,\n"
                          "Q-3,Cup,5,1,,,,no\n")
        assert runner.invoke(args=["catalog", "import", str(source)]).exit_code == 0
        queued = dict(db.session.execute(select(Product.sku, Product.queued)).all())
        assert queued["Q-2"] and queued["Q-2-S"] and not queued["Q-3"]  # the option shares its product's line
        source.write_text("sku,name,price,total,queue\nQ-4,Lamp,5,1,maybe\nQ-5,Mug,5,1,yes\n")
        refused = runner.invoke(args=["catalog", "import", str(source)])
        assert refused.exit_code == 1
        assert "row 2, queue: must be yes or no" in refused.output and "row 3, queue: a waiting room needs" in refused.output

        token = form_token(client, f"/admin/products/{product.id}")
        saved = client.post(f"/admin/products/{product.id}", headers=basic(), data={
            "csrf_token": token, "sku": "Q-1", "name": "Q", "price": "10.00", "currency": "usd", "total": "3",
            "starts_at": "2030-01-01T10:00:00Z", "queue": ["no", "yes"]})
        assert saved.status_code == 303
        db.session.refresh(product)
        assert product.queued
        page = client.get(f"/admin/products/{product.id}", headers=basic()).get_data(as_text=True)
        assert 'name="queue" type="checkbox" value="yes" checked' in page


def test_in_chromium_a_shopper_joins_before_the_start_is_let_in_and_pays_and_another_is_told_it_is_over(
        make_app, settings, live_server, shopper):
    from datetime import UTC, datetime

    from playwright.sync_api import expect

    # The door's proof of work at a small difficulty here (its cost at the default is a benchmark's).
    door = {**settings, "QUEUE_PROOF_OF_WORK": "5000", "STOCK_POLL_SECONDS": "1"}
    app = make_app(door)
    with app.app_context():
        product = queued_product(total=1, starts_in=timedelta(seconds=14), name="Drop tee")
        base_url = live_server(door, workers=2, threads=4).url
        first = shopper(base_url)
        first.page.clock.install(time=datetime.now(UTC) + timedelta(minutes=3))  # its clock 3 minutes fast
        page = first.visit(f"/products/{product.id}")
        line = page.locator(f"#queue-{product.id}")
        expect(line).to_contain_text("The line is open")
        expect(page.locator(f"#stock-{product.id}")).to_contain_text("Bought through the line")
        join_button = page.locator("form.join-queue button")
        expect(join_button).to_be_enabled(timeout=15_000)  # once the page has done its proof of work
        first.shot("queue-waiting-room")
        join_button.click()
        place = page.locator(f"#place-{product.id}")
        expect(place).to_contain_text("You are in the line. Your place is drawn at the start.")

        # After the start, by the shop's clock: its turn comes within a poll or two, with Buy.
        expect(place).to_contain_text("It is your turn", timeout=20_000)
        expect(line).to_contain_text("Letting the line in")
        expect(page.locator(f"#stock-{product.id}")).to_contain_text("1 of 1 left")
        first.shot("queue-admitted")

        second = shopper(base_url)
        other = second.visit(f"/products/{product.id}")
        expect(other.locator("form.join-queue button")).to_be_enabled(timeout=15_000)
        other.locator("form.join-queue button").click()
        expect(other.locator(f"#place-{product.id}")).to_contain_text("Your place: 2")
        expect(other.locator(f"#place-{product.id}")).to_contain_text("You are next")
        second.shot("queue-place-in-line")

        page.locator(f"#place-{product.id} form.buy button").click()
        expect(page.locator(".hold")).to_be_visible()
        first.pay()
        expect(page.locator(".hold-completed")).to_contain_text("Paid: it is yours")
        expect(other.locator(f"#place-{product.id}")).to_contain_text("Sold out: nothing left to wait for",
                                                                          timeout=10_000)
        expect(other.locator(f"#queue-{product.id}")).to_contain_text("Sold out")
        assert units(product.id).sold == 1


def test_in_chromium_a_place_far_back_asks_for_itself_only_when_the_line_nears_it(make_app, settings, live_server,
                                                                                 shopper):
    """A crowd's private polls scale with the places near the front: a waiting place counts how many are
    ahead from the line's shared answer, and asks the shop for itself once it is one place away."""
    from playwright.sync_api import expect

    door = {**settings, **NO_DOOR, "STOCK_POLL_SECONDS": "1"}
    app = make_app(door)
    with app.app_context():
        client = app.test_client()
        product_id = queued_product(total=2, name="Drop tee").id
        for n in range(1, 7):
            assert join(client, product_id, n).status_code == 201
        start_now(product_id)
        advance_queues()  # places 1 and 2 let in: two units
        base_url = live_server(door, workers=1, threads=4).url
        buyer = shopper(base_url)
        asked = []
        buyer.context.on("request", lambda request: asked.append(request.url)
                         if request.url.endswith(f"/api/queue/{product_id}/entries/mine") else None)
        page = buyer.visit(f"/products/{product_id}")
        page.locator("form.join-queue button").click()
        place = page.locator(f"#place-{product_id}")
        expect(place).to_contain_text("Your place: 7")
        expect(place).to_contain_text("4 ahead of you")
        asked.clear()
        page.wait_for_timeout(4000)  # four rounds of the page's polls
        assert asked == [], asked

        def let_the_admitted_lapse():
            db.session.execute(update(QueueEntry).where(QueueEntry.product_id == product_id,
                                                        QueueEntry.admitted_at.is_not(None),
                                                        QueueEntry.held_at.is_(None))
                               .values(pass_expires_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            advance_queues()

        let_the_admitted_lapse()  # 3 and 4 let in
        expect(place).to_contain_text("2 ahead of you")  # counted from the line's answer alone
        assert asked == [], asked
        let_the_admitted_lapse()  # 5 and 6 let in: one place away
        expect(place).to_contain_text("You are next")
        assert asked, "the page asked for its place once the line neared it"
        let_the_admitted_lapse()  # its turn
        expect(place).to_contain_text("It is your turn")
