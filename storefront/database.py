"""How the shop reaches its database, beyond the ORM session.

- The app's engine gets two listeners, bound to it when the app is made: SQLite's pragmas
  (embedded mode), and a PostgreSQL connection whose server went away while it sat idle is
  never handed out.
- :func:`reading`: autocommit reads, no BEGIN and ROLLBACK around a SELECT.
- :func:`one_statement`: the hot path's shortcut, kept because it is measured
  (docs/benchmarks.md): a psycopg cursor on a connection of the app's one pool, in autocommit, so a
  hold or a stock check is one prepared statement and one round trip.
"""

import select
from contextlib import contextmanager

import psycopg
from flask import Flask, current_app
from psycopg.rows import namedtuple_row
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from storefront.clock import follow_database_clock
from storefront.extensions import db

_CURSOR = "storefront.cursor"


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


@contextmanager
def dry_run():
    """A connection whose changes never last: nothing commits it, so closing it at the block's end
    rolls back whatever was done in it (a preview: an import run to see what it would change)."""
    with db.engine.connect() as conn:
        yield conn


@contextmanager
def one_statement():
    """A psycopg cursor on a PostgreSQL connection in autocommit, for the hot paths: one
    statement, one round trip, its own transaction; no BEGIN or COMMIT. Rows come as named tuples.

    The connection is the app's pool's, the one a thread's request uses for everything else: a
    thread holds one connection at a time, so a host needs as many as it has threads (gunicorn.conf.py
    checks that). Borrowing it costs no round trip: psycopg's autocommit is the client's flag, set
    here and cleared before the connection goes back, and the pool's rollback on return sends
    nothing to a connection outside a transaction. Its statements stay prepared on it (unless a
    pooler is in front: :func:`prepared`), and its cursor is kept with it: making one per statement
    cost a fifth of the client's CPU time for a hold (22 of 110 µs).
    """
    pooled = db.engine.raw_connection()
    connection = pooled.dbapi_connection
    try:
        cursor = pooled.info.get(_CURSOR)  # the pool clears info when its connection is closed or replaced
        if cursor is None:
            cursor = pooled.info[_CURSOR] = connection.cursor(row_factory=namedtuple_row)
        connection.autocommit = True
        yield cursor
    except (psycopg.OperationalError, psycopg.InterfaceError):
        pooled.invalidate()  # broken (the server went away): never used again
        raise
    finally:
        if not connection.closed:
            connection.autocommit = False
        pooled.close()
