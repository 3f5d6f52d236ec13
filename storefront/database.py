"""How the shop reaches its database, beyond the ORM session.

- The app's engine gets two listeners, bound to it when the app is made: SQLite's pragmas
  (embedded mode), and a PostgreSQL connection whose server went away while it sat idle is
  never handed out.
- :func:`reading`: autocommit reads, no BEGIN and ROLLBACK around a SELECT.
- :func:`one_statement`: the hot path's shortcut, kept because it is measured
  (docs/benchmarks.md): a psycopg cursor on a connection each thread keeps, in autocommit, so a
  hold or a stock check is one prepared statement and one round trip. Its engine is the app's
  second, made on first use and closed by :func:`close` (``app.extensions`` holds it).
"""

import select
import threading
from contextlib import contextmanager

import psycopg
from flask import Flask, current_app
from psycopg.rows import namedtuple_row
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from storefront.clock import follow_database_clock
from storefront.config import connect_args, threads_per_process
from storefront.extensions import db

HOT_POOL_SIZE = 8
_HOT_ENGINE = "storefront.statement_engine"
_held = threading.local()


def init_app(app: Flask) -> None:
    with app.app_context():
        _listen(db.engine)
        url = db.engine.url
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        follow_database_clock(lambda: _database_now(conninfo))
    else:
        follow_database_clock(None)


def _database_now(conninfo: str):
    """The database's clock, on a connection of its own (at most once a minute per process)."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def _listen(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    else:
        event.listen(engine.pool, "checkout", _drop_dead_connection)


def _tune_sqlite(dbapi_connection, connection_record):
    """Embedded mode: WAL lets readers run beside the one writer, and foreign keys hold."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alive(connection) -> bool:
    """Open, idle and with nothing to read: a server that went away closes its side first."""
    pgconn = connection.pgconn
    if pgconn.status != 0:  # psycopg.pq.ConnStatus.OK
        return False
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _drop_dead_connection(dbapi_connection, connection_record, connection_proxy):
    """A pooled PostgreSQL connection whose server went away is never handed out.

    A restarted (or stopped) server closes its side of every connection; an idle
    connection then reads as ready, when it should have nothing to say. One poll
    of its socket, no round trip: the pool drops it and connects afresh, so no
    request fails on a connection that died while it sat in the pool.
    """
    if not _alive(dbapi_connection):
        raise DisconnectionError("the server closed this connection while it was idle")


def reading():
    """A connection for reads, in autocommit: no BEGIN and ROLLBACK round trips around a
    SELECT that sees one consistent snapshot anyway, and no transaction held open."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def prepared() -> bool:
    """Whether the hot paths prepare their statements on the server (``execute(..., prepare=prepared())``):
    yes, straight to PostgreSQL (a round trip's parsing and planning saved, measured); never behind a
    pooler in transaction mode (DATABASE_POOLER), which cannot carry them."""
    extensions = current_app.extensions
    answer = extensions.get("storefront.prepared")
    if answer is None:
        answer = extensions["storefront.prepared"] = current_app.config["STOREFRONT"].database_pooler is None
    return answer


def on_postgresql() -> bool:
    """Whether the app's database is PostgreSQL, where the hot paths run one prepared statement
    each (:func:`one_statement`). Asked on every hot request: looked up once per app."""
    extensions = current_app.extensions
    answer = extensions.get("storefront.on_postgresql")
    if answer is None:
        answer = extensions["storefront.on_postgresql"] = db.engine.dialect.name == "postgresql"
    return answer


def _statement_engine() -> Engine:
    """The app's second engine, for the hot paths: the same database, its connections kept in
    autocommit, so a statement is its own transaction and nothing needs resetting after it."""
    app = current_app._get_current_object()
    engine = app.extensions.get(_HOT_ENGINE)
    if engine is None:
        # Each thread keeps its connection for life, so the pool never makes a thread wait: it keeps as
        # many as the process has threads (GUNICORN_THREADS), and opens more for any thread beyond
        # them (no overflow cap) rather than refuse it after pool_timeout. How many connections a
        # setting of workers and threads needs is checked when gunicorn starts (gunicorn.conf.py).
        engine = app.extensions[_HOT_ENGINE] = create_engine(
            db.engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
            pool_size=max(HOT_POOL_SIZE, threads_per_process()), max_overflow=-1, pool_recycle=300,
            connect_args=connect_args(app.config["STOREFRONT"].database_pooler))
        _listen(engine)
    return engine


@contextmanager
def dry_run():
    """A connection whose changes never last: nothing commits it, so closing it at the block's end
    rolls back whatever was done in it (a preview: an import run to see what it would change)."""
    with db.engine.connect() as conn:
        yield conn


@contextmanager
def one_statement():
    """A psycopg cursor on a PostgreSQL connection in autocommit, for the hot paths: one
    prepared statement, one round trip, its own transaction; no BEGIN or COMMIT. Rows
    come as named tuples.

    Each thread keeps one connection from the pool of the autocommit engine, as a
    minimal app keeps one per thread: no checkout per request, and its statements
    stay prepared. It is looked at before each use (one poll, no round trip) and
    replaced when its server went away. The cursor is kept with it: making one per
    statement cost a fifth of the client's CPU time for a hold (22 of 110 µs).
    """
    engine = _statement_engine()
    held = getattr(_held, "connections", None)
    if held is None:
        held = _held.connections = {}
    pooled, cursor = held.get(engine, (None, None))
    if pooled is None or pooled.dbapi_connection is None or not _alive(pooled.dbapi_connection):
        if pooled is not None:
            pooled.invalidate()
        pooled = engine.raw_connection()
        cursor = pooled.dbapi_connection.cursor(row_factory=namedtuple_row)
        held[engine] = (pooled, cursor)
    try:
        yield cursor
    except (psycopg.OperationalError, psycopg.InterfaceError):
        held.pop(engine, None)
        pooled.invalidate()  # broken (the server went away): never used again
        raise


def close(app: Flask) -> None:
    """Close the app's hot-path engine, and the connection the calling thread keeps from it
    (an app being thrown away: a test's, or a process's at exit)."""
    engine = app.extensions.pop(_HOT_ENGINE, None)
    if engine is not None:
        pooled, _ = getattr(_held, "connections", {}).pop(engine, (None, None))
        if pooled is not None:
            pooled.invalidate()
        engine.dispose()
