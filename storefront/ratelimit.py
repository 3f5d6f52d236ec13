"""HOLD_RATE_LIMIT: holds, checkouts and cart changes per client address, and the admin's failed logins.

Applied to those routes only (Flask-Limiter's request hook cost every request about 110 µs, the
stock check and /healthz included). The address is the key everywhere (an IPv4 address or an IPv6
/64), and an IPv6 /48 is counted as a whole too, at IPV6_BLOCK_FACTOR times the limit. Every
process and host counts together:

- the hold rate in the shop's database, always: a sliding window counter (the one ``limits`` keeps
  in Redis), one row per address and window in an UNLOGGED table. On PostgreSQL a hold is counted
  by the hold function in the hold's own statement; checkouts and cart changes by one prepared
  upsert. (Counted in Redis, or in a statement of its own, the count cost a hold a quarter of its
  throughput on this project's benchmark machine: docs/benchmarks.md.) It needs no Redis, so a
  Redis outage never lifts it;
- the admin's failed logins with ``limits``' moving window, in Redis when REDIS_URL is set (failing
  open while Redis is down, see the README), else a row per failure in the database.

Past a limit, 429 with ``Retry-After``.
"""

import functools
import logging
import math
import secrets
import time
from dataclasses import dataclass

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from sqlalchemy import BigInteger, Float, Index, Integer, String, bindparam, case, delete, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import utcnow
from storefront.database import on_postgresql, one_statement, prepared, reading
from storefront.errors import ApiError
from storefront.extensions import db
from storefront.metrics import RATE_LIMITER_DOWN
from storefront.owners import address_block, client_address
from storefront.sweep import every_sweep


class LimitWindow(db.Model):
    """The hold rate's count for one key: this window's and the last one's (:class:`DatabaseLimiter`).
    An UNLOGGED table on PostgreSQL (migration 0019): no WAL, no flush to wait for; a crash empties
    it. The sweep forgets keys whose last count is two windows old."""

    __tablename__ = "limit_windows"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)  # seconds since the epoch // period
    hits: Mapped[int] = mapped_column(Integer)
    last_hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LimitHit(db.Model):
    """One failed admin login, without Redis (:class:`FailedLogins`): kept for its window."""

    __tablename__ = "limit_hits"
    __table_args__ = (Index("ix_limit_hits_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)  # seconds since the epoch, by the shop's clock

log = logging.getLogger(__name__)

SCOPE = "holds"


REDIS_TIMEOUT_SECONDS = 1


class DatabaseLimiter:
    """Without Redis: the limit counted in the shop's database, which every process and host shares
    (in embedded mode too: gunicorn's workers once counted apart, each giving an address its own 30).

    The sliding window counter Redis keeps (``limits``' SlidingWindowCounter), as one row per key in
    ``limit_windows`` with this window's count and the last one's: one upsert adds this request and
    reads both (one index probe, under the row's lock), one prepared round trip on the connection the
    hot path keeps (database.one_statement). A hold on PostgreSQL is counted by the hold function with
    the same statement inside it. Every request counts, a refused one too: a client that keeps asking
    stays refused until it stops.
    """

    def __init__(self, limit, scope: str = SCOPE):
        self.amount = limit.amount
        self.period = limit.get_expiry()
        self.scope = scope

    def _window(self) -> tuple[int, float, int]:
        """This window's number, how much of the last one the sliding window still overlaps, and the
        seconds until this one ends (a refusal's Retry-After)."""
        window, into = divmod(utcnow().timestamp(), self.period)
        return int(window), (self.period - into) / self.period, max(1, math.ceil(self.period - into))

    def allow(self, key: str, factor: int = 1) -> tuple[bool, int]:
        window, weight, wait = self._window()
        values = {"scope": self.scope, "key": key[:64], "window": window}
        if on_postgresql():
            with one_statement() as cursor:
                current, previous = cursor.execute(_COUNT_HIT, values, prepare=prepared()).fetchone()
        else:
            with db.engine.begin() as conn:
                current, previous = conn.execute(_count_hit_statement(), values).one()
        # The last window weighs as much of it as the sliding one still overlaps.
        if (previous or 0) * weight + current > self.amount * factor:
            return False, wait
        return True, 0

    def reset(self) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(_windows).where(_windows.c.scope == self.scope))

    def forget_old_counts(self) -> int:
        """The sweep's part: keys whose last count is older than the last window weigh nothing."""
        window, _, _ = self._window()
        with db.engine.begin() as conn:
            return conn.execute(delete(_windows).where(_windows.c.scope == self.scope,
                                                       _windows.c.window_start < window - 1)).rowcount

    def for_the_hold_function(self, address: str, block_factor: int) -> "HoldRate":
        """What the hold function needs to count this request itself (inventory/sql/place_hold_v9.sql)."""
        window, weight, wait = self._window()
        block = address_block(address) if block_factor else None
        return HoldRate(key=address[:64], block=block, window=window, weight=weight, limit=self.amount,
                        block_limit=self.amount * block_factor, wait_seconds=wait)


@dataclass(frozen=True)
class HoldRate:
    """A hold's count against HOLD_RATE_LIMIT, made by the hold function in the hold's own statement."""
    key: str
    block: str | None
    window: int
    weight: float  # how much of the last window the sliding one still overlaps
    limit: int
    block_limit: int
    wait_seconds: int


class RateLimited(Exception):
    def __init__(self, wait_seconds: int):
        super().__init__(f"past the rate limit: wait {wait_seconds} s")
        self.wait_seconds = wait_seconds


_windows = LimitWindow.__table__
# PostgreSQL: the count is one function a migration installed (inventory/sql/count_hit_v1.sql), the
# one the hold function calls in the hold's own statement.
_COUNT_HIT = "SELECT hits AS current, last_hits AS previous FROM storefront_count_hit(%(scope)s, %(key)s, %(window)s)"


def _count_hit_statement():
    """storefront_count_hit's upsert for SQLite (embedded mode), through SQLAlchemy."""
    window = bindparam("window")
    statement = sqlite_insert(_windows).values(scope=bindparam("scope"), key=bindparam("key"),
                                               window_start=window, hits=1, last_hits=0)
    return statement.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={"last_hits": case((_windows.c.window_start >= window, _windows.c.last_hits),
                                (_windows.c.window_start == window - 1, _windows.c.hits), else_=0),
              "hits": case((_windows.c.window_start >= window, _windows.c.hits + 1), else_=1),
              "window_start": func.max(_windows.c.window_start, window)},
    ).returning(_windows.c.hits, _windows.c.last_hits)


_hits = LimitHit.__table__


def wait_in_database(scope: str, key: str, amount: int, period: int) -> int:
    """0 while ``key`` has fewer than ``amount`` hits in the last ``period`` seconds; else the seconds
    until the oldest of them ages out (an exact moving window, a row a hit)."""
    now = utcnow().timestamp()
    with reading() as conn:
        made, oldest = conn.execute(select(func.count(), func.min(_hits.c.at)).where(
            _hits.c.scope == scope, _hits.c.key == key, _hits.c.at > now - period)).one()
    return max(1, math.ceil(oldest + period - now)) if made >= amount else 0


def record_in_database(scope: str, key: str, period: int) -> None:
    """One more hit for ``key``; now and then the hits no window reaches any more are forgotten."""
    now = utcnow().timestamp()
    with db.engine.begin() as conn:
        conn.execute(insert(_hits).values(scope=scope, key=key[:64], at=now))
        if secrets.randbelow(100) == 0:
            conn.execute(delete(_hits).where(_hits.c.scope == scope, _hits.c.at < now - period))


def forget_in_database(scope: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(_hits).where(_hits.c.scope == scope))


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    limit = parse(settings.hold_rate_limit)
    app.extensions["storefront.ratelimit"] = DatabaseLimiter(limit)
    every_sweep(app, "rateWindowsForgotten", lambda: current_app.extensions["storefront.ratelimit"].forget_old_counts())
    app.extensions["storefront.failed_logins"] = FailedLogins(settings.redis_url)
    app.extensions["storefront.ipv6_block_factor"] = settings.ipv6_block_factor


class FailedLogins:
    """The admin's guard against guessing: LIMIT's wrong passwords from one address (an IPv4 address
    or an IPv6 /64, and its /48 as a whole at IPV6_BLOCK_FACTOR times as many) within its window, and
    that address is refused (429, Retry-After) until the oldest failure ages out, whatever it sends
    next. A moving window, in Redis when REDIS_URL is set, else in the shop's database: every process
    and host counts together either way. While Redis is down it fails open, as the hold limit does."""

    LIMIT = parse("10 per 15 minutes")
    SCOPE = "admin-login-failures"

    def __init__(self, redis_url: str | None):
        self.limiter = MovingWindowRateLimiter(storage_from_string(
            redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        ) if redis_url else None

    def _limit(self, factor: int):
        return self.LIMIT if factor == 1 else type(self.LIMIT)(self.LIMIT.amount * factor, self.LIMIT.multiples)

    def wait_seconds(self, address: str, factor: int = 1) -> int:
        """0 while the address may try; else how long until it may try again."""
        limit = self._limit(factor)
        if self.limiter is None:
            return wait_in_database(self.SCOPE, address, limit.amount, limit.get_expiry())
        try:
            if self.limiter.test(limit, self.SCOPE, address):
                return 0
            reset_at = self.limiter.get_window_stats(limit, self.SCOPE, address).reset_time
        except RedisError as error:
            RATE_LIMITER_DOWN.inc()
            log.warning("login throttle unavailable (%s): attempt let through", type(error).__name__)
            return 0
        return max(1, math.ceil(reset_at - time.time()))

    def failed(self, address: str, factor: int = 1) -> None:
        limit = self._limit(factor)
        if self.limiter is None:
            record_in_database(self.SCOPE, address, limit.get_expiry())
            return
        try:
            self.limiter.hit(limit, self.SCOPE, address)
        except RedisError as error:
            log.warning("login throttle unavailable (%s): failure not counted", type(error).__name__)

    def reset(self) -> None:
        if self.limiter is None:
            forget_in_database(self.SCOPE)
        else:
            self.limiter.storage.reset()


def allowed_with_its_block(allow, address: str) -> tuple[bool, int]:
    """``allow`` for the address key (an IPv4 address or an IPv6 /64), then for its IPv6 /48 as a whole
    at IPV6_BLOCK_FACTOR times the limit: (allowed, seconds to wait when not)."""
    allowed, wait = allow(address)
    factor = current_app.extensions["storefront.ipv6_block_factor"]
    if allowed and factor and (block := address_block(address)) is not None:
        allowed, wait = allow(block, factor)
    return allowed, wait


def rate_limited(wait: int) -> ApiError:
    error = ApiError(429, "rate_limited", "Too many holds from this address; wait a moment and try again.")
    error.headers = {"Retry-After": str(wait)}
    return error


def holds_rate_limit(view):
    """Count this request against its address's HOLD_RATE_LIMIT (and its IPv6 /48's); refuse it past
    the limit. Counted in the shop's database, which every process and host shares."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        allowed, wait = allowed_with_its_block(current_app.extensions["storefront.ratelimit"].allow,
                                               client_address() or "unknown")
        if not allowed:
            raise rate_limited(wait)
        return view(*args, **kwargs)

    return limited


def counted_by_the_hold_function(view):
    """:func:`holds_rate_limit` for a hold: on PostgreSQL the hold function counts the request itself,
    in the hold's own statement (the view passes it :func:`hold_rate`); elsewhere it is counted here."""
    counted_here = holds_rate_limit(view)

    @functools.wraps(view)
    def limited(*args, **kwargs):
        if on_postgresql():
            return view(*args, **kwargs)
        return counted_here(*args, **kwargs)

    return limited


def hold_rate(address: str) -> HoldRate | None:
    """This request's count for the hold function (PostgreSQL); None elsewhere (counted already)."""
    if not on_postgresql():
        return None
    return current_app.extensions["storefront.ratelimit"].for_the_hold_function(
        address or "unknown", current_app.extensions["storefront.ipv6_block_factor"])
