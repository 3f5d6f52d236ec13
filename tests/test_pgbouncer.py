"""Behind PgBouncer in transaction mode (issue 46): Debian's PgBouncer 1.18, which carries nothing of
a session from one transaction to the next, and cannot carry a server-side prepared statement.

With ``DATABASE_POOLER=pgbouncer`` the shop prepares nothing on the server and keeps no session
state: its hot paths (a hold, the stock check, the hold rate counted in SQL) run from two gunicorns'
sixteen threads through two server connections, and every answer is the shop's own. Without the
setting, the same crowd gets 500s (``DuplicatePreparedStatement``): the test that fails if a
prepared statement comes back. ``scripts/test`` also runs the races, the contract's routes and the
drops' tests a second time through PgBouncer (``STOREFRONT_TEST_POOLER=pgbouncer``).
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from scripts.services import PgBouncerServer
from tests.factories import make_product, visitor


@pytest.fixture
def small_pool(postgres, app):
    """PgBouncer with two server connections: every client shares them, transaction by transaction."""
    with PgBouncerServer(postgres, pool_size=2) as bouncer:
        yield bouncer


def crowd(servers, product_id: int, people: int = 48) -> Counter:
    """Stock checks, holds and their reads from ``people`` visitors at once, dealt over the servers."""
    def one(n):
        base = servers[n % len(servers)].url
        statuses = [requests.get(f"{base}/api/inventory/check/{product_id}", timeout=30).status_code]
        held = requests.post(f"{base}/api/reservations", json={"productId": product_id, "userId": visitor(n)},
                             timeout=30)
        statuses.append(held.status_code)
        statuses.append(requests.get(f"{base}/api/inventory/check/{product_id}", timeout=30).status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=16) as pool:
        return Counter(status for statuses in pool.map(one, range(people)) for status in statuses)


def test_with_database_pooler_the_hot_paths_run_through_transaction_pooling(small_pool, settings, live_server):
    product = make_product(total=10)
    pooled = {**settings, "DATABASE_URL": small_pool.url(), "DATABASE_POOLER": "pgbouncer",
              "HOLD_RATE_LIMIT": "100000/minute"}  # counted in SQL, in the hold function's statement
    servers = [live_server(pooled, workers=2, threads=4) for _ in range(2)]
    statuses = crowd(servers, product.id)
    assert statuses[500] == 0 and set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] == 10


def test_without_it_a_prepared_statement_breaks_behind_transaction_pooling(small_pool, settings, live_server):
    """The control: the same crowd, the shop preparing its hot statements as it does straight to PostgreSQL."""
    product = make_product(total=10)
    straight = {**settings, "DATABASE_URL": small_pool.url()}
    straight.pop("DATABASE_POOLER", None)
    server = live_server(straight, workers=2, threads=4)
    statuses = crowd([server], product.id)
    assert statuses[500] > 0, statuses
    assert "prepared statement" in server.log_path.read_text()


def test_the_setting_is_checked_at_start_up_and_turns_preparing_off_on_both_engines(settings, make_app):
    from storefront.config import Config, ConfigError

    for value, message in (("pgpool", "DATABASE_POOLER must be one of pgbouncer"),):
        with pytest.raises(ConfigError, match=message):
            Config.from_env({**settings, "DATABASE_POOLER": value})
    with pytest.raises(ConfigError, match="DATABASE_POOLER is for PostgreSQL"):
        Config.from_env({"DATABASE_POOLER": "pgbouncer", "DEMO_PAYMENTS": "1"})
    app = make_app({**settings, "DATABASE_POOLER": "pgbouncer"})
    with app.app_context():
        from storefront.database import one_statement, prepared
        from storefront.extensions import db

        assert prepared() is False
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.prepare_threshold is None
        with one_statement() as cursor:
            assert cursor.connection.prepare_threshold is None


def test_a_suite_run_behind_pgbouncer_reaches_the_database_through_it(settings, request):
    """scripts/test's second pass (STOREFRONT_TEST_POOLER=pgbouncer) really goes through PgBouncer;
    the first goes straight to PostgreSQL."""
    from tests.conftest import POOLER

    if POOLER:
        assert settings["DATABASE_URL"] == request.getfixturevalue("pgbouncer").url()
        assert settings["DATABASE_POOLER"] == "pgbouncer"
    else:
        assert settings["DATABASE_URL"] == request.getfixturevalue("postgres").url()
        assert "DATABASE_POOLER" not in settings
