"""The shop's time zone (``SHOP_TIMEZONE``): the zone an owner types and reads times in.

Times are kept in UTC everywhere (storefront/clock.py); this is only how an owner writes one
and reads it back. A time without an offset (``2026-03-29T10:00``, the admin's date-time picker,
a CLI option, a CSV cell) is read in the shop's zone; a time with ``Z`` or an offset stays the
exact moment it names. Around a daylight-saving change a local time can name no moment (the hour
the clocks skip) or two (the hour they repeat): both are refused, naming the offsets to choose
from, rather than guessed, unless the time is exactly the one already set.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

TIME_FORMAT_HELP = "2026-01-01T10:00 (in the shop's zone) or 2026-01-01T10:00:00Z"


class UnreadableTime(ValueError):
    """The text names no moment, or a local time that names none or two; the message says which."""


def shop_zone() -> ZoneInfo:
    """The zone the running app's owner reads times in (UTC without an app)."""
    if not has_app_context():
        return ZoneInfo("UTC")
    return ZoneInfo(current_app.config["STOREFRONT"].shop_timezone)


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def read_moment(text: str, zone: ZoneInfo, current: datetime | None = None) -> datetime:
    """A moment from ISO 8601 text, in UTC: with an offset as it says, without one in ``zone``.

    ``current``: the moment already set, which a form writes back as the same local text; a
    repeated local time that names it is read as it, so saving a form moves nothing.
    Raises UnreadableTime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UnreadableTime(f"must be a moment such as {TIME_FORMAT_HELP}") from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    first, second = (moment.replace(tzinfo=zone, fold=fold) for fold in (0, 1))
    offsets = first.utcoffset(), second.utcoffset()
    if offsets[0] == offsets[1]:
        return first.astimezone(UTC)
    # fold=0 takes the offset from before the change and fold=1 the one after: in a gap the two
    # readings fall on either side of it, and a round trip through UTC does not come back.
    skipped = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment
    if skipped:
        raise UnreadableTime(f"{moment:%Y-%m-%d %H:%M} does not happen in {zone.key}: its clocks skip that hour; "
                             f"give a time after it, or an offset such as {_offset_text(offsets[1])}")
    candidates = [first.astimezone(UTC), second.astimezone(UTC)]
    if current is not None and current.astimezone(UTC) in candidates:
        return current.astimezone(UTC)
    raise UnreadableTime(f"{moment:%Y-%m-%d %H:%M} happens twice in {zone.key} (its clocks go back): add the "
                         f"offset, {_offset_text(offsets[0])} for the first or {_offset_text(offsets[1])} "
                         "for the second")


def zoned_text(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as exact ISO 8601 in ``zone`` (``2026-03-29T10:00:00+02:00``; ``…Z`` in UTC): what the
    CSV export and the CLI write, readable by the owner and read back as the same moment."""
    local = moment.astimezone(zone)
    text = local.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if zone.key == "UTC" else text


def picker_value(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as an ``<input type="datetime-local">`` holds it in ``zone`` (seconds only when it has them)."""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")
