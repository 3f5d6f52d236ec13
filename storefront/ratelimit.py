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
import time

from flask import Flask, current_app, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import RedisError

from storefront.errors import ApiError
from storefront.metrics import RATE_LIMITER_DOWN

log = logging.getLogger(__name__)

SCOPE = "holds"


REDIS_TIMEOUT_SECONDS = 1


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    if settings.redis_url:
        storage = storage_from_string(settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                      socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    else:
        storage = storage_from_string("memory://")
    app.extensions["storefront.ratelimit"] = (SlidingWindowCounterRateLimiter(storage), parse(settings.hold_rate_limit))


def holds_rate_limit(view):
    """Count this request against its address's HOLD_RATE_LIMIT; refuse it past the limit."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        limiter, limit = current_app.extensions["storefront.ratelimit"]
        address = request.remote_addr or "unknown"
        try:
            allowed = limiter.hit(limit, SCOPE, address)
        except RedisError as error:
            # Fail open: a Redis outage must not stop sales. Stock and the per-visitor
            # limit are enforced by the database; only the per-address pace goes unchecked.
            RATE_LIMITER_DOWN.inc()
            log.warning("rate limiter unavailable (%s): request let through", type(error).__name__)
            return view(*args, **kwargs)
        if not allowed:
            reset_at = limiter.get_window_stats(limit, SCOPE, address).reset_time
            error = ApiError(429, "rate_limited", "Too many holds from this address; wait a moment and try again.")
            error.headers = {"Retry-After": str(max(1, math.ceil(reset_at - time.time())))}
            raise error
        return view(*args, **kwargs)

    return limited


def reset(app: Flask) -> None:
    """Forget every address's count (tests)."""
    limiter, _ = app.extensions["storefront.ratelimit"]
    limiter.storage.reset()
