"""Fixtures: a real PostgreSQL for the suite, apps bound to it, and a gunicorn for races.

PostgreSQL is started by the suite itself (scripts/services.py) on a free
loopback port and thrown away at the end; nothing is skipped for lack of it.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
import requests
from flask import template_rendered
from playwright.sync_api import sync_playwright
from sqlalchemy import text

from scripts.services import (
    KafkaServer,
    Localstripe,
    PgBouncerServer,
    PostgresServer,
    RedisServer,
    StripeMock,
    free_port,
    start_on_free_port,
    wait_for_port,
)
from storefront import create_app
from storefront.extensions import db
from tests.browsing import CHROMIUM_ARGS, Shopper, chromium_path
from tests.factories import STRIPE_KEYS
from tests.stripe_double import StripeDouble

REPO = Path(__file__).resolve().parent.parent
# Drawn for each run: a key written in the repository is an example, which start-up refuses.
TEST_SECRET_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def stripe_mock():
    """Stripe's own API mock: checks that our requests have the shapes Stripe accepts."""
    with StripeMock() as server:
        yield server


@pytest.fixture(scope="session")
def localstripe():
    """A stateful Stripe stand-in: intents that can be confirmed, refunded, and send webhooks."""
    with Localstripe() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def kafka():
    """One Apache Kafka node (KRaft) for the suite; each test gets its own topic."""
    with KafkaServer() as server:
        yield server


# STOREFRONT_TEST_POOLER=pgbouncer: the suite's database reached through PgBouncer in transaction
# mode (scripts/test runs the races, the contract's routes and the drops' tests so a second time).
POOLER = os.environ.get("STOREFRONT_TEST_POOLER") or None


@pytest.fixture(scope="session")
def pgbouncer(postgres):
    """Debian's PgBouncer in transaction mode in front of the suite's PostgreSQL: eight server
    connections for every client (two gunicorns of two workers by eight threads share them)."""
    with PgBouncerServer(postgres, pool_size=8) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def database_url(postgres, request):
    """The suite's database, migrated once to head (straight to PostgreSQL); through PgBouncer
    when the suite runs behind it."""
    url = postgres.url()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET_KEY, "DEMO_PAYMENTS": "1"})
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return request.getfixturevalue("pgbouncer").url() if POOLER else url


@pytest.fixture
def settings(database_url) -> dict:
    """Environment-style settings for an app on the suite's PostgreSQL; tests may change them."""
    # Tests place many holds from one address: the rate limit and the address's hold limit have their
    # own tests. No Stripe keys: the demo gateway, on purpose (tests with Stripe turn it off).
    return {"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET_KEY, "HOLD_RATE_LIMIT": "100000/minute",
            "MAX_HELD_UNITS_PER_ADDRESS": "100000", "DEMO_PAYMENTS": "1", **({"DATABASE_POOLER": POOLER} if POOLER else {})}


@pytest.fixture
def make_app(tmp_path):
    """Build apps from settings; each one's tables are emptied afterwards."""
    apps = []

    def build(settings: dict):
        app = create_app(settings, instance_path=str(tmp_path / "instance"))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            _empty_tables()
            db.engine.dispose()
        _close_connections(app)


def _close_connections(app):
    """Close what an app opened to Kafka and Redis, so no socket outlives its test."""
    bus = app.extensions.get("storefront.events")
    if hasattr(bus, "close"):
        bus.close()
    jobs = app.extensions.get("storefront.jobs")
    if hasattr(jobs, "connection"):
        jobs.connection.close()


def _empty_tables():
    db.session.remove()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("TRUNCATE admin_actions, draw_entries, draws, payment_events, orders, holds, checkouts, cart_lines, stock_buckets, queue_entries, queues, spent_challenges, limit_hits, limit_windows, products RESTART IDENTITY CASCADE"))
    else:
        db.session.execute(text("DELETE FROM admin_actions"))
        db.session.execute(text("DELETE FROM draw_entries"))
        db.session.execute(text("DELETE FROM draws"))
        db.session.execute(text("DELETE FROM payment_events"))
        db.session.execute(text("DELETE FROM orders"))
        db.session.execute(text("DELETE FROM holds"))
        db.session.execute(text("DELETE FROM checkouts"))
        db.session.execute(text("DELETE FROM cart_lines"))
        db.session.execute(text("DELETE FROM stock_buckets"))
        db.session.execute(text("DELETE FROM queue_entries"))
        db.session.execute(text("DELETE FROM queues"))
        db.session.execute(text("DELETE FROM spent_challenges"))
        db.session.execute(text("DELETE FROM limit_hits"))
        db.session.execute(text("DELETE FROM limit_windows"))
        db.session.execute(text("DELETE FROM products WHERE option_of IS NOT NULL"))  # RESTRICT, row by row on SQLite
        db.session.execute(text("DELETE FROM products"))
    db.session.commit()


@pytest.fixture
def app(make_app, settings):
    app = make_app(settings)
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def embedded_app(tmp_path):
    """The store on its embedded defaults: no settings at all, SQLite under instance/."""
    instance = tmp_path / "instance"
    app = create_app({}, instance_path=str(instance))
    app.config["TESTING"] = True
    with app.app_context():
        flask_migrate.upgrade()
        yield app
        db.session.remove()
        db.engine.dispose()


class LiveServer:
    """gunicorn serving wsgi:app in its own processes, as in production."""

    def __init__(self, env: dict, log_path: Path, workers: int = 2, threads: int = 8,
                 worker_connections: int | None = None):
        self.port = free_port()
        # A worker takes no more connections than this at once: a race's crowd spreads over the workers.
        limit = ["--worker-connections", str(worker_connections)] if worker_connections else []
        self.log_path = log_path

        def launch():
            self.log = open(log_path, "wb")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
                 "--graceful-timeout", "5", *limit],
                cwd=REPO, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
            )
            wait_for_port(self.port, 30, "gunicorn", self.process)

        def new_port():
            self.log.close()
            self.port = free_port()

        start_on_free_port(launch, new_port, log_path)
        self.url = f"http://127.0.0.1:{self.port}"
        # Every worker must have booted, not only the master's socket.
        for _ in range(workers * 4):
            requests.get(f"{self.url}/healthz", timeout=10).raise_for_status()

    def stop(self):
        self.log.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def live_server(tmp_path):
    """Start gunicorn with the given settings: ``live_server(settings, workers=2)``."""
    servers = []

    def start(settings: dict, **options) -> LiveServer:
        server = LiveServer(settings, tmp_path / f"gunicorn-{len(servers)}.log", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def rendered(app):
    """The names of the templates rendered during the test, in order."""
    names = []

    def record(sender, template, context, **extra):
        names.append(template.name)

    template_rendered.connect(record, app)
    yield names
    template_rendered.disconnect(record, app)


class WorkerProcess:
    """``python worker.py`` as its own process, as in production."""

    def __init__(self, env: dict, log_path: Path, role: str = "all"):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "worker.py", role], cwd=REPO, env={**os.environ, **env},
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


@pytest.fixture
def worker(tmp_path):
    """Start ``python worker.py`` with the given settings: ``worker(settings, role="all")``."""
    workers = []

    def start(settings: dict, role: str = "all") -> WorkerProcess:
        process = WorkerProcess(settings, tmp_path / "worker.log", role)
        workers.append(process)
        return process

    yield start
    for process in workers:
        if process.process.poll() is None:
            # Ten seconds to stop on SIGTERM, then killed: a stop that hangs is no test's subject here
            # (one in the full suite once took the whole 30 s of the default).
            process.stop(timeout=10)


@pytest.fixture(scope="session")
def playwright_driver():
    """Playwright's driver, one for the suite (a second one cannot start beside it)."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """Debian's Chromium (never a downloaded one), for the suite."""
    launched = playwright_driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def store(app, settings, live_server):
    """The store under gunicorn, polling stock every second. Extra settings: store(HOLD_TTL_SECONDS="4")."""

    def start(**extra):
        return live_server({**settings, "STOCK_POLL_SECONDS": "1", **extra}, workers=2, threads=4).url

    return start


@pytest.fixture
def shopper(browser):
    """Open shoppers (browser contexts); the test fails if any saw an error it did not expect."""
    opened = []

    def open_(base_url, **options) -> Shopper:
        opened.append(Shopper(browser, base_url, **options))
        return opened[-1]

    yield open_
    problems = [problem for each in opened for problem in each.problems]
    for each in opened:
        each.context.close()
    assert problems == [], "the browser saw errors"


# Collected in the page: every Content-Security-Policy violation, whatever reports it.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
TALL = {"width": 1280, "height": 2000}


@pytest.fixture
def card_shopper(shopper, localstripe):
    """A shopper whose browser gets Stripe.js's double and whose Stripe calls reach localstripe."""

    def open_(url, **options):
        # Tall enough that nothing is clicked just after a scroll: headless Chromium can route a
        # click made right after scrolling to a cross-origin frame that was under that point before.
        opened = shopper(url, viewport=TALL, **options)
        opened.stripe = StripeDouble(localstripe.url, STRIPE_KEYS["STRIPE_SECRET_KEY"],
                                     STRIPE_KEYS["STRIPE_PUBLISHABLE_KEY"])
        opened.stripe.install(opened.context)
        opened.context.add_init_script(CSP_WATCH)
        return opened

    return open_
