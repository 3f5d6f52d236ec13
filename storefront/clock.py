"""Time in one place: timezone-aware UTC in Python, UTC in every database, and one clock.

The database's clock decides a drop's start, the line's ranking and passes, and every hold's
expiry, on every web host and worker alike: a host whose own clock is minutes off must open
nothing early. The hold function reads PostgreSQL's ``now()``; everything Python decides reads
:func:`utcnow`, which is this host's clock moved by how far it is from the database's, measured
when the app is made and again at most once a minute (one ``SELECT clock_timestamp()`` on a
connection of its own; storefront/database.py). On SQLite (embedded mode, one host) the host's
clock is the database's.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

FOLLOW_EVERY_SECONDS = 60


class _DatabaseClock:
    """How far this host's clock is from the database's, kept fresh."""

    def __init__(self):
        self.offset = timedelta(0)
        self.source: Callable[[], datetime] | None = None
        self.measured_at = float("-inf")
        self._measuring = threading.Lock()

    def follow(self, source: Callable[[], datetime] | None) -> None:
        self.source, self.offset, self.measured_at = source, timedelta(0), float("-inf")
        self.measure()

    def measure(self) -> None:
        if self.source is None or not self._measuring.acquire(blocking=False):
            return  # another thread measures: this one goes on with the offset it has
        try:
            sent = datetime.now(UTC)
            theirs = self.source()
            back = datetime.now(UTC)
            self.offset = theirs - (sent + (back - sent) / 2)
            if abs(self.offset) > timedelta(seconds=2):
                log.warning("this host's clock is %.1f s off the database's: following the database's",
                            -self.offset.total_seconds())
        except Exception as error:  # the database is down: keep the last offset, try again later
            log.warning("could not read the database's clock (%s); keeping the last offset", type(error).__name__)
        finally:
            self.measured_at = time.monotonic()
            self._measuring.release()


_clock = _DatabaseClock()


def follow_database_clock(source: Callable[[], datetime] | None) -> None:
    """From now on :func:`utcnow` follows ``source`` (the database's ``clock_timestamp()``); None: this host's."""
    _clock.follow(source)


def utcnow() -> datetime:
    """Now, by the database's clock (this host's, moved by the last measured offset)."""
    if _clock.source is not None and time.monotonic() - _clock.measured_at > FOLLOW_EVERY_SECONDS:
        _clock.measure()
    return datetime.now(UTC) + _clock.offset


def isoformat_z(moment: datetime) -> str:
    """``2026-01-01T12:10:00Z``: the contract's timestamp form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; SQLite keeps naive UTC text, which sorts
    and compares correctly as long as every value goes through this type.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: use storefront.clock.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
