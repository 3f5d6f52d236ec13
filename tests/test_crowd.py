"""A crowd of open pages (issue 34, the contract's shared answers): the stock check and a drop's line
are the same bytes for every reader, so the project's own nginx can answer a crowd's polls for a
second with one request to the shop; everything per reader stays private; and every thread of a
web process gets its database connections, whatever workers and threads it is started with."""

import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import update

from scripts.services import NginxServer
from storefront.catalog.models import Product
from storefront.clock import utcnow
from tests.factories import make_product, visitor

SHARED = "public, max-age=0, s-maxage=1"


def shop_requests(base_url: str, route: str) -> int:
    """The requests the shop itself answered on a route, from its /metrics (every worker's)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return int(sum(float(value) for value in re.findall(
        rf'storefront_http_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*\}} ([0-9.e+]+)', text)))


@pytest.mark.parametrize("fragment", [False, True], ids=["json", "fragment"])
def test_the_stock_check_is_the_same_bytes_for_every_reader(app, fragment):
    waiting = make_product(total=3, starts_at=utcnow() + timedelta(hours=3))
    open_ = make_product(total=3)
    one, two = app.test_client(), app.test_client()
    one.get("/")  # a browser: its secret cookie, and the zone its page told the shop
    one.set_cookie("storefront_tz", "Asia/Tokyo")
    htmx = {"HX-Request": "true"} if fragment else {}
    for product in (waiting, open_):
        url = f"/api/inventory/check/{product.id}"
        first = one.get(url, headers={**htmx, "Accept-Language": "de-DE"})
        second = two.get(url, headers={**htmx, "Accept-Language": "ja"})
        assert first.status_code == second.status_code == 200
        assert first.data == second.data and first.headers["ETag"] == second.headers["ETag"]
        assert first.headers["Cache-Control"] == SHARED and "HX-Request" in first.headers["Vary"]
        assert "Set-Cookie" not in first.headers and "Cookie" not in first.headers["Vary"]
        again = one.get(url, headers={**htmx, "If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.headers["Cache-Control"] == SHARED
    if fragment:  # the start: a UTC moment, for the page to say in its reader's zone
        body = two.get(f"/api/inventory/check/{waiting.id}", headers=htmx).get_data(as_text=True)
        assert re.search(r'<time datetime="[0-9T:-]+Z" class="starts-at">[A-Z][a-z]{2} \d+, \d{4}, [0-9:]+\s[AP]M UTC</time>',
                         body), body


def test_what_belongs_to_one_reader_is_never_kept_by_a_shared_cache(app):
    client = app.test_client()
    product = make_product(total=3)
    placed = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)})
    assert placed.status_code == 201 and placed.headers["Cache-Control"] == "private, no-store"
    hold_id = placed.get_json()["reservationId"]
    for answer in (client.get(f"/api/reservations/{hold_id}", headers={"X-Visitor-Id": visitor(1)}),
                   client.get("/api/cart", headers={"X-Visitor-Id": visitor(1)}),
                   client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}),
                   client.get(f"/products/{product.id}"), client.get("/")):
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "private, no-store", answer.request.path


@pytest.fixture
def behind_nginx(app, settings, live_server):
    """The shop under gunicorn with the project's own nginx in front (deploy/nginx/), polling every second."""
    shop = live_server({**settings, "STOCK_POLL_SECONDS": "1", "TRUSTED_PROXY_COUNT": "1"}, workers=2, threads=8)
    with NginxServer(f"127.0.0.1:{shop.port}") as nginx:
        yield shop, nginx


def test_through_nginx_a_crowds_polls_reach_the_shop_a_few_times_and_holds_never_are_cached(behind_nginx):
    shop, nginx = behind_nginx
    product = make_product(total=5)
    url = f"{nginx.url}/api/inventory/check/{product.id}"
    route = "/api/inventory/check/<product_id:product_id>"
    before = shop_requests(shop.url, route)
    start = threading.Barrier(200)

    def poll(_):
        with requests.Session() as session:
            start.wait()
            return session.get(url, timeout=30)

    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(poll, range(200)))
    elapsed_reached = shop_requests(shop.url, route) - before
    assert [answer.status_code for answer in answers] == [200] * 200
    assert {answer.json()["available"] for answer in answers} == {5}
    assert {answer.headers["X-Cache-Status"] for answer in answers} <= {"MISS", "HIT", "UPDATING", "EXPIRED"}
    assert 1 <= elapsed_reached <= 3, f"{elapsed_reached} of 200 polls reached the shop"

    # A hold goes through, every time, and answers exactly; the next poll after a second sees it.
    for n in (1, 2):
        hold = requests.post(f"{nginx.url}/api/reservations", json={"productId": product.id, "userId": visitor(n)},
                             timeout=10)
        assert hold.status_code == 201 and "X-Cache-Status" not in hold.headers
        assert hold.headers["Cache-Control"] == "private, no-store"
    held_at = time.monotonic()
    while requests.get(url, timeout=10).json()["available"] != 3:
        assert time.monotonic() - held_at < 1 + 1.5, "a change of stock took longer than the cache's second"
        time.sleep(0.1)
    # The browser's conditional poll: nginx answers 304 from what it keeps.
    tag = requests.get(url, timeout=10).headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": tag}, timeout=10).status_code == 304


def test_through_nginx_a_waiting_page_turns_buy_on_within_a_poll_and_says_the_start_in_its_own_zone(
        behind_nginx, shopper):
    _, nginx = behind_nginx
    product = make_product(total=2, name="Crowd drop")
    start = (utcnow() + timedelta(seconds=5)).replace(microsecond=0)
    table = Product.__table__
    from storefront.extensions import db

    db.session.execute(update(table).where(table.c.id == product.id).values(starts_at=start))
    db.session.commit()
    visitor_ = shopper(nginx.url, timezone_id="Asia/Tokyo", locale="en-GB")
    page = visitor_.page
    page.clock.install(time=datetime.now(UTC) - timedelta(minutes=3))  # its clock 3 minutes slow
    visitor_.visit(f"/products/{product.id}")
    tokyo = start.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    expect(page.locator("time.starts-at").first).to_contain_text(f"{tokyo.hour:02d}:{tokyo.minute:02d}")
    expect(page.locator("time.starts-at").first).not_to_contain_text("UTC")
    buy = page.locator(f"#stock-{product.id} button.buy-button")
    expect(buy).to_be_disabled()
    expect(buy).to_be_enabled(timeout=15_000)
    assert utcnow() - start < timedelta(seconds=1 + 1 + 1.5)  # one poll, the cache's second, the way


def test_a_storm_with_more_threads_than_the_old_pool_is_served_every_time(app, settings, live_server):
    product = make_product(total=3)
    server = live_server(settings, workers=1, threads=24)
    url = f"{server.url}/api/inventory/check/{product.id}"
    stop = time.monotonic() + 6
    start = threading.Barrier(24)

    def storm(_):
        statuses = []
        with requests.Session() as session:
            start.wait()
            while time.monotonic() < stop:
                statuses.append(session.get(url, timeout=10).status_code)
        return statuses

    with ThreadPoolExecutor(24) as pool:
        answered = [status for statuses in pool.map(storm, range(24)) for status in statuses]
    assert answered and set(answered) == {200}, {status: answered.count(status) for status in set(answered)}
    assert "TimeoutError" not in server.log_path.read_text(errors="replace")


def test_gunicorn_refuses_to_start_with_more_threads_than_postgresql_has_connections(settings, tmp_path):
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", "127.0.0.1:0", "--workers", "20",
         "--threads", "20"],
        cwd=__import__("tests.conftest", fromlist=["REPO"]).REPO, env={**__import__("os").environ, **settings},
        capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "20 workers x 20 threads need 410 database connections (one a thread" in started.stdout + started.stderr
    assert "Lower WEB_CONCURRENCY or GUNICORN_THREADS" in started.stdout + started.stderr


HX_HEADERS = ["HX-Boosted", "HX-History-Restore-Request", "HX-Target", "HX-Current-URL", "HX-Trigger"]


def test_a_shared_answer_depends_on_hx_request_alone(app):
    """Every combination of the other HX-* headers and Accept gives one of two bodies: the fragment
    exactly when HX-Request is true (a boosted request or a history restore once got JSON, and a
    cache keyed on HX-Request handed it to a crowd's Buy buttons)."""
    import itertools

    from tests.test_queue import NO_DOOR, queued_product  # noqa: F401  (a drop's line is a shared answer too)

    product = make_product(total=3)
    line = queued_product(total=2)
    client = app.test_client()
    for url in (f"/api/inventory/check/{product.id}", f"/api/queue/{line.id}"):
        bodies: dict[bool, set] = {True: set(), False: set()}
        for hx_request in ("true", "TRUE", None, "false"):
            for extra in itertools.chain.from_iterable(itertools.combinations(HX_HEADERS, k) for k in range(3)):
                headers = {name: "true" for name in extra}
                if hx_request is not None:
                    headers["HX-Request"] = hx_request
                for accept in ("application/json", "text/html"):
                    answer = client.get(url, headers={**headers, "Accept": accept})
                    assert answer.status_code == 200 and answer.headers["Cache-Control"] == SHARED
                    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
                    bodies[hx_request in ("true", "TRUE")].add((answer.data, answer.headers["ETag"]))
        assert len(bodies[True]) == 1 and len(bodies[False]) == 1, url
        (fragment, _), = bodies[True]
        (json_body, _), = bodies[False]
        assert fragment.lstrip().startswith(b"<") and json_body.startswith(b"{")


@pytest.mark.parametrize("spelling", ["05", "0005", "+5", "\u0665", "\uff15", "5.0", " 5"])
def test_a_product_id_has_one_spelling(app, spelling):
    product = make_product(total=3)
    assert product.id == 1
    client = app.test_client()
    assert client.get("/api/inventory/check/1").status_code == 200
    wrong = spelling.replace("5", "1").replace("\u0665", "\u0661").replace("\uff15", "\uff11")
    for url in (f"/api/inventory/check/{wrong}", f"/products/{wrong}"):
        assert client.get(url).status_code == 404, url


def test_through_nginx_no_header_poisons_the_cache_and_no_spelling_reaches_the_shop(behind_nginx):
    shop, nginx = behind_nginx
    product = make_product(total=5)
    url = f"{nginx.url}/api/inventory/check/{product.id}"
    route = "/api/inventory/check/<product_id:product_id>"
    poisoned = requests.get(url, headers={"HX-Request": "true", "HX-Boosted": "true",
                                          "HX-History-Restore-Request": "true"}, timeout=10)
    assert poisoned.text.lstrip().startswith("<")
    for _ in range(20):
        assert requests.get(url, headers={"HX-Request": "true"}, timeout=10).text.lstrip().startswith("<")
        assert requests.get(url, headers={"HX-Request": "TRUE"}, timeout=10).text.lstrip().startswith("<")
        assert requests.get(url, timeout=10).text.startswith("{")
    before = shop_requests(shop.url, route)
    for spelling in (f"0{product.id}", f"000{product.id}", "%D9%A1"):
        for base in ("inventory/check", "queue"):
            answer = requests.get(f"{nginx.url}/api/{base}/{spelling}", timeout=10)
            assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert shop_requests(shop.url, route) == before
    assert requests.get(f"{nginx.url}/api/queue/challenge", timeout=10).status_code in (200, 404)
    # X-Forwarded-Host from the client is overwritten by nginx: the shop never builds a link on it.
    page = requests.get(f"{nginx.url}/products/{product.id}", headers={"X-Forwarded-Host": "evil.example"},
                        timeout=10)
    assert page.status_code == 200 and "evil.example" not in page.text
