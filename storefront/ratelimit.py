"""HOLD_RATE_LIMIT: holds and checkouts per client address.

Built on ``limits`` (the library under Flask-Limiter) and applied to those two
routes only: Flask-Limiter's request hook cost every request about 110 µs, the
stock check and /healthz included. A sliding window per address (two counters,
constant work per request, where a moving window keeps one entry per request
allowed), kept in Redis when REDIS_URL is set, so the limit holds across
processes and hosts; past it,
429 with ``Retry-After``. While Redis is down the limit fails open (see the README).
"""

import functools
import logging
import math
import threading
import time

from flask import Flask, current_app, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis.exceptions import RedisError

from storefront.errors import ApiError
from storefront.metrics import RATE_LIMITER_DOWN

log = logging.getLogger(__name__)

SCOPE = "holds"


REDIS_TIMEOUT_SECONDS = 1


class SharedLimiter:
    """Across processes and hosts: ``limits``' sliding window counter, kept in Redis."""

    def __init__(self, redis_url: str, limit):
        self.limit = limit
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(
            redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS))

    def allow(self, address: str) -> tuple[bool, int]:
        """(allowed, seconds to wait when not). Raises RedisError when Redis is down."""
        if self.limiter.hit(self.limit, SCOPE, address):
            return True, 0
        reset_at = self.limiter.get_window_stats(self.limit, SCOPE, address).reset_time
        return False, max(1, math.ceil(reset_at - time.time()))

    def reset(self) -> None:
        self.limiter.storage.reset()


class ProcessLimiter:
    """Without Redis (embedded mode, one process): the same sliding window counter, in memory.

    Written here rather than taken from ``limits``' memory storage, which starts a timer
    thread every 10 ms under load to expire its keys: 85 µs of CPU per hold, measured.
    """

    KEPT_ADDRESSES = 100_000

    def __init__(self, limit):
        self.amount = limit.amount
        self.period = limit.get_expiry()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int, int]] = {}  # address -> (window, this one's count, last one's)

    def allow(self, address: str) -> tuple[bool, int]:
        now = time.time()
        window, into = divmod(now, self.period)
        window = int(window)
        with self._lock:
            started, current, previous = self._windows.get(address, (window, 0, 0))
            if started != window:
                previous, current = (current if started == window - 1 else 0), 0
            # The last window's count weighs as much as it still overlaps the sliding one.
            if previous * (self.period - into) / self.period + current + 1 > self.amount:
                self._windows[address] = (window, current, previous)
                return False, max(1, math.ceil(self.period - into))
            if len(self._windows) >= self.KEPT_ADDRESSES:
                self._windows = {a: w for a, w in self._windows.items() if w[0] >= window - 1}
            self._windows[address] = (window, current + 1, previous)
            return True, 0

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    limit = parse(settings.hold_rate_limit)
    app.extensions["storefront.ratelimit"] = (
        SharedLimiter(settings.redis_url, limit) if settings.redis_url else ProcessLimiter(limit))
    app.extensions["storefront.failed_logins"] = FailedLogins(settings.redis_url)


class FailedLogins:
    """The admin's guard against guessing: LIMIT's wrong passwords from one address within its
    window, and that address is refused (429, Retry-After) until the oldest failure ages out,
    whatever it sends next. A moving window from ``limits``, in Redis when REDIS_URL is set (every
    process and host counts together), else in this process's memory; logins are rare, so its
    per-hit cost does not matter here. While Redis is down it fails open, as the hold limit does."""

    LIMIT = parse("10 per 15 minutes")
    SCOPE = "admin-login-failures"

    def __init__(self, redis_url: str | None):
        storage = (storage_from_string(redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                       socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
                   if redis_url else storage_from_string("memory://"))
        self.limiter = MovingWindowRateLimiter(storage)

    def wait_seconds(self, address: str) -> int:
        """0 while the address may try; else how long until it may try again."""
        try:
            if self.limiter.test(self.LIMIT, self.SCOPE, address):
                return 0
            reset_at = self.limiter.get_window_stats(self.LIMIT, self.SCOPE, address).reset_time
        except RedisError as error:
            RATE_LIMITER_DOWN.inc()
            log.warning("login throttle unavailable (%s): attempt let through", type(error).__name__)
            return 0
        return max(1, math.ceil(reset_at - time.time()))

    def failed(self, address: str) -> None:
        try:
            self.limiter.hit(self.LIMIT, self.SCOPE, address)
        except RedisError as error:
            log.warning("login throttle unavailable (%s): failure not counted", type(error).__name__)

    def reset(self) -> None:
        self.limiter.storage.reset()


def holds_rate_limit(view):
    """Count this request against its address's HOLD_RATE_LIMIT; refuse it past the limit."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        limiter = current_app.extensions["storefront.ratelimit"]
        try:
            allowed, wait = limiter.allow(request.remote_addr or "unknown")
        except RedisError as error:
            # Fail open: a Redis outage must not stop sales. Stock and the per-visitor
            # limit are enforced by the database; only the per-address pace goes unchecked.
            RATE_LIMITER_DOWN.inc()
            log.warning("rate limiter unavailable (%s): request let through", type(error).__name__)
            return view(*args, **kwargs)
        if not allowed:
            error = ApiError(429, "rate_limited", "Too many holds from this address; wait a moment and try again.")
            error.headers = {"Retry-After": str(wait)}
            raise error
        return view(*args, **kwargs)

    return limited

