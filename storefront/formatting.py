"""How money and time read on the pages."""

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import format_currency, get_currency_precision
from flask import Flask, has_request_context, request

from storefront.clock import isoformat_z, utcnow
from storefront.money import major_units
from storefront.shop_zone import picker_value, shop_zone


def money(minor_units: int, currency: str) -> str:
    """``1800, "usd"`` → ``$18.00``; ``1500, "jpy"`` → ``¥1,500``; ``25500, "kwd"`` → ``KWD 25.500``.

    The amount is what Stripe charges (storefront/money.py); Babel only lays it out, with
    the decimals the amount has where Babel's own count for the currency differs (HUF, ISK).
    """
    amount, code = major_units(minor_units, currency), currency.upper()
    decimals = -amount.as_tuple().exponent
    if amount == amount.to_integral_value() and get_currency_precision(code) == 0:
        decimals = 0  # whole forint or krónur read as Babel writes them
    pattern = "¤#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return format_currency(amount, code, format=pattern, locale="en_US", currency_digits=False)


# The browser's time zone, as storefront.js reads it from Intl and keeps it in this cookie.
TIME_ZONE_COOKIE = "storefront_tz"
UTC = ZoneInfo("UTC")
ENGLISH = Locale.parse("en_US")


def _reader_locale() -> Locale:
    if has_request_context():
        for language in request.accept_languages.values():
            try:
                return Locale.parse(language.replace("-", "_"))
            except (ValueError, UnknownLocaleError):
                continue
    return ENGLISH


def _reader_time_zone() -> ZoneInfo | None:
    name = request.cookies.get(TIME_ZONE_COOKIE) if has_request_context() else None
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_datetime(moment: datetime | None) -> str:
    """A moment as the reader reads dates: their language (Accept-Language) and their browser's
    time zone (``Nov 23, 2026, 10:02 AM``); in UTC, and saying so, when the zone is unknown."""
    if moment is None:
        return ""
    return _formatted(moment, _reader_time_zone(), _reader_locale())


def _formatted(moment: datetime, zone: ZoneInfo | None, locale: Locale) -> str:
    local = moment.astimezone(zone or UTC)
    pattern = str(locale.datetime_formats["medium"])  # how this language joins a date and a time
    text = (pattern.replace("{1}", format_date(local, "medium", locale=locale))
            .replace("{0}", format_time(local, "short", locale=locale)))
    return text if zone else f"{text} UTC"


def shop_datetime(moment: datetime | None) -> str:
    """A moment as the owner reads it, in the shop's zone and naming it (``Mar 29, 2026, 10:00 AM
    Europe/Paris``): what the admin pages and the emails say, whatever the reader's browser says."""
    if moment is None:
        return ""
    zone = shop_zone()
    return f"{_formatted(moment, zone, ENGLISH)} {zone.key}"


def shop_stamp(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A moment in the shop's zone, to the second, for a table whose heading names the zone."""
    return "" if moment is None else moment.astimezone(shop_zone()).strftime(pattern)


def shop_time_of_day(moment: datetime) -> str:
    """The time of day in the shop's zone, to the second, naming it (``10:00:05 Europe/Paris``)."""
    return f"{shop_stamp(moment, '%H:%M:%S')} {shop_zone().key}"


def utc_datetime(moment: datetime | None) -> str:
    """A moment in UTC, in English, saying so (``Nov 23, 2026, 10:02 AM UTC``): what a shared answer
    writes, the same for every reader, inside a ``<time datetime>`` the page then says in the
    reader's own language and zone (static/js/storefront.js)."""
    return "" if moment is None else _formatted(moment, None, ENGLISH)


def seconds_left(remaining: timedelta) -> int:
    """Whole seconds still to run (rounded up, never below 0): what the browser counts down."""
    return max(0, math.ceil(remaining.total_seconds()))


def minutes_seconds(remaining: timedelta) -> str:
    seconds = max(0, int(remaining.total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


def shop_clock_milliseconds() -> int:
    """The shop's clock (the database's, storefront/clock.py) now, in milliseconds since the epoch.
    Every page carries it, so that its script counts a start down on the shop's time whatever the
    device's own clock says (static/js/storefront.js, shopNow)."""
    return int(utcnow().timestamp() * 1000)


def init_app(app: Flask) -> None:
    app.add_template_global(shop_clock_milliseconds)
    app.add_template_filter(money)
    app.add_template_filter(utc_datetime)
    app.add_template_filter(minutes_seconds)
    app.add_template_filter(seconds_left)
    app.add_template_filter(local_datetime)
    app.add_template_filter(shop_datetime)
    app.add_template_filter(shop_time_of_day)
    app.add_template_filter(shop_stamp)
    app.add_template_filter(lambda moment: picker_value(moment, shop_zone()), "picker_value")
    app.add_template_global(shop_zone)
    app.add_template_filter(isoformat_z)
