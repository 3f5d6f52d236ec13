"""Extension objects, bound to the app in create_app()."""

import select
import threading
from contextlib import contextmanager

import psycopg
from psycopg.rows import namedtuple_row
from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

# Named constraints, so that migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate(render_as_batch=True, compare_type=True)


HOT_POOL_SIZE = 8


def on_postgresql() -> bool:
    """Whether the app's database is PostgreSQL, where the hot paths run one prepared statement
    each (:func:`one_statement`). Asked on every hot request: looked up once per app."""
    extensions = current_app.extensions
    answer = extensions.get("storefront.on_postgresql")
    if answer is None:
        answer = extensions["storefront.on_postgresql"] = db.engine.dialect.name == "postgresql"
    return answer


def _statement_engine():
    """The app's second engine, for the hot paths: the same database, its connections kept in
    autocommit, so a statement is its own transaction and nothing needs resetting after it."""
    app = current_app._get_current_object()
    engine = app.extensions.get("storefront.statement_engine")
    if engine is None:
        engine = app.extensions["storefront.statement_engine"] = create_engine(
            db.engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, pool_size=HOT_POOL_SIZE,
            max_overflow=HOT_POOL_SIZE, pool_recycle=300, connect_args={"connect_timeout": 5})
    return engine


_held = threading.local()


def _alive(connection) -> bool:
    """Open, idle and with nothing to read: a server that went away closes its side first."""
    pgconn = connection.pgconn
    if pgconn.status != 0:  # psycopg.pq.ConnStatus.OK
        return False
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


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


def dispose_engines(app) -> None:
    """Close the app's autocommit engine and the connection this thread holds from it (tests)."""
    engine = app.extensions.pop("storefront.statement_engine", None)
    if engine is not None:
        pooled, _ = getattr(_held, "connections", {}).pop(engine, (None, None))
        if pooled is not None:
            pooled.invalidate()
        engine.dispose()


def reading():
    """A connection for single-statement reads, in autocommit: no BEGIN and ROLLBACK
    round trips around a SELECT that sees one consistent snapshot anyway."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record):
    """Embedded mode: WAL lets readers run beside the one writer, and foreign keys hold."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Pool, "checkout")
def _drop_dead_connection(dbapi_connection, connection_record, connection_proxy):
    """A pooled PostgreSQL connection whose server went away is never handed out.

    A restarted (or stopped) server closes its side of every connection; an idle
    connection then reads as ready, when it should have nothing to say. One poll
    of its socket, no round trip: the pool drops it and connects afresh, so no
    request fails on a connection that died while it sat in the pool.
    """
    if getattr(dbapi_connection, "pgconn", None) is not None and not _alive(dbapi_connection):  # not SQLite
        raise DisconnectionError("the server closed this connection while it was idle")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the admin's CSRF token lives in one), with the signing
    serializer built once per app instead of on every request: building it was a sixth of
    a /healthz answer. The key cannot change while the app runs, so one is enough.

    Only the admin uses a session, so nearly every request carries no session cookie: that
    is seen in the raw Cookie header, without parsing every cookie into a dict first."""

    def open_session(self, app, request):
        if f"{self.get_cookie_name(app)}=" not in request.environ.get("HTTP_COOKIE", ""):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app):
        # Secure whenever the page came over HTTPS (behind a proxy: its X-Forwarded-Proto).
        return request.is_secure

    def get_signing_serializer(self, app):
        serializer = app.extensions.get("storefront.session_serializer")
        if serializer is None:
            serializer = app.extensions["storefront.session_serializer"] = super().get_signing_serializer(app)
        return serializer
