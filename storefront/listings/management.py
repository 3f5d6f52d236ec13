"""Changing the catalogue: products added and updated, one at a time or from a CSV file.

Every value is checked before anything is written, and a whole file is imported in
one transaction or not at all, naming the row and the field that stopped it. A new
total never goes below what is sold and held (checked under the product's lock, as
``stock set`` does). A price change never changes a hold already placed: a hold keeps
the amount it was placed at.
"""

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, literal, select, update

from storefront.clock import utcnow
from storefront.inventory.stock import (
    BelowCommitted,
    lock_product,
    products,
    release_lapsed_holds,
    spread_total,
    stock_levels,
)
from storefront.money import InvalidAmount, currency, minor_units, price_text
from storefront.shop_zone import UnreadableTime, read_moment, shop_zone, zoned_text
from storefront.spreadsheets import from_spreadsheet_cell, spreadsheet_cell

FIELDS = ("sku", "name", "description", "price", "currency", "total", "starts_at", "option_of", "option", "queue",
          "per_buyer", "paused", "draw", "entries_close")
MAX_PER_BUYER = 1_000_000
_YES, _NO = {"yes", "true", "1", "on"}, {"no", "false", "0", "off"}
QUEUE_NEEDS_A_START = "a waiting room needs a start time: give starts_at too"
# A card authorisation lasts 7 days: a draw's entries close within 5 of its start, so the last entrant's
# authorisation is still there to capture, with a day or two to spare.
MAX_DRAW_WINDOW = timedelta(days=5)
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# Not frozen: an exception's traceback is set on it as it leaves a ``with`` block.
@dataclass(eq=False)
class InvalidField(ValueError):
    field: str
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        return f"{where}{self.field}: {self.message}"


class CatalogRefused(Exception):
    """One or more rows are wrong; nothing was written."""

    def __init__(self, problems: list[InvalidField]):
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def _moment(text: str, zone: ZoneInfo, current: datetime | None, field: str = "starts_at") -> datetime:
    """A time as ISO 8601, kept in UTC: with its offset as written, without one in the shop's zone."""
    try:
        return read_moment(text, zone, current)
    except UnreadableTime as unreadable:
        raise InvalidField(field, str(unreadable)) from None


def _yes_or_no(value, field: str) -> bool | None:
    """A yes/no cell or field (None when not given)."""
    if value is None or str(value).strip() == "":
        return None
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in _YES | _NO:
        return str(value).strip().lower() in _YES
    raise InvalidField(field, "must be yes or no")


def parse_product(values: dict, *, partial: bool = False, current_currency: str | None = None,
                  current_starts_at: datetime | None = None, zone: ZoneInfo | None = None,
                  current_entries_close: datetime | None = None) -> dict:
    """Check the given fields and turn them into column values. ``partial``: only those given,
    a price then being in ``current_currency`` (the product's) unless a currency is given too.
    A start without an offset is read in ``zone`` (the shop's by default); ``current_starts_at``,
    the start already set, settles a local time that the clocks' going back makes happen twice."""
    columns = {}
    zone = zone or shop_zone()

    def given(field):
        value = values.get(field)
        return None if value is None or (isinstance(value, str) and value.strip() == "") else str(value).strip()

    is_option = given("option_of") is not None
    # An option takes its name, price and start from its product, unless it names its own price.
    for field in ("sku", "total") if is_option else ("sku", "name", "price", "total"):
        if not partial and given(field) is None:
            raise InvalidField(field, "is required")
    if is_option != (given("option") is not None) and not partial:
        raise InvalidField("option" if is_option else "option_of", "an option names its product and its label")
    if is_option:
        if not _SKU.match(given("option_of")):
            raise InvalidField("option_of", "must be the SKU of the product this is an option of")
        columns["option_of_sku"] = given("option_of")
    if (label := given("option")) is not None:
        if len(label) > 60 or any(ord(character) < 32 for character in label):
            raise InvalidField("option", "must be at most 60 characters, such as EU 42 or Blue")
        columns["option_label"] = label
    if (sku := given("sku")) is not None:
        if not _SKU.match(sku):
            raise InvalidField("sku", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
        columns["sku"] = sku
    if (name := given("name")) is not None:
        if len(name) > 200:
            raise InvalidField("name", "must be at most 200 characters")
        columns["name"] = name
    if "description" in values and values["description"] is not None:
        description = str(values["description"]).strip()
        if len(description) > 5000:
            raise InvalidField("description", "must be at most 5,000 characters")
        columns["description"] = description
    if (code := given("currency")) is not None:
        try:
            columns["currency"] = currency(code).code
        except InvalidAmount as invalid:
            raise InvalidField("currency", str(invalid)) from None
    elif not partial:
        columns["currency"] = current_currency or "usd"
    if (price := given("price")) is not None:
        try:
            columns["price"] = minor_units(price, columns.get("currency") or current_currency or "usd")
        except InvalidAmount as invalid:
            raise InvalidField("price", str(invalid)) from None
    elif "currency" in columns and partial:
        raise InvalidField("price", "give the price in the new currency too")
    if values.get("starts_at") is not None:  # "" clears it
        text = str(values["starts_at"]).strip()
        columns["starts_at"] = _moment(text, zone, current_starts_at) if text else None
    if (queued := values.get("queue")) is not None and str(queued).strip() != "":
        if isinstance(queued, bool):
            columns["queued"] = queued
        elif str(queued).strip().lower() in _YES | _NO:
            columns["queued"] = str(queued).strip().lower() in _YES
        else:
            raise InvalidField("queue", "must be yes or no")
        if columns["queued"] and not partial and not is_option and columns.get("starts_at") is None:
            raise InvalidField("queue", QUEUE_NEEDS_A_START)
    if (draw := _yes_or_no(values.get("draw"), "draw")) is not None:
        columns["draw"] = draw
    if values.get("entries_close") is not None:  # "" clears it
        text = str(values["entries_close"]).strip()
        columns["entries_close"] = _moment(text, zone, current_entries_close, "entries_close") if text else None
    if values.get("per_buyer") is not None:  # "" (an empty cell, an empty field) clears it
        text = str(values["per_buyer"]).strip()
        if text and not (re.fullmatch(r"\d{1,7}", text) and 1 <= int(text) <= MAX_PER_BUYER):
            raise InvalidField("per_buyer", f"must be a whole number from 1 to {MAX_PER_BUYER:,}, or empty for no limit")
        columns["per_buyer"] = int(text) if text else None
    if (paused := values.get("paused")) is not None and str(paused).strip() != "":
        if isinstance(paused, bool):
            columns["paused"] = paused
        elif str(paused).strip().lower() in _YES | _NO:
            columns["paused"] = str(paused).strip().lower() in _YES
        else:
            raise InvalidField("paused", "must be yes or no")
    if (total := given("total")) is not None:
        if not re.fullmatch(r"\d{1,9}", total):
            raise InvalidField("total", "must be a whole number from 0 to 999,999,999")
        columns["total"] = int(total)
    return columns


def _write(conn: Connection, columns: dict, existing) -> int:
    """Insert or update one product under its lock; raises InvalidField for a total too low."""
    columns = dict(columns)
    total = columns.pop("total", None)
    _as_option(conn, columns, existing)
    _queue_needs_a_start(conn, columns, existing)
    _draw_window(conn, columns, existing)
    if existing is None:
        product_id = conn.execute(insert(products).values(**columns, created_at=utcnow()).returning(products.c.id)
                                  ).scalar_one()
        spread_total(conn, product_id, total or 0)
        return product_id
    lock_product(conn, existing.id)
    _start_not_passed(conn, columns, existing)
    if total is not None:
        release_lapsed_holds(conn, existing.id, utcnow())
        try:
            spread_total(conn, existing.id, total)
        except BelowCommitted as below:
            committed = below.sold + below.held
            raise InvalidField("total", f"cannot go below {committed} ({below.sold} sold and {below.held} held)"
                               ) from None
    if columns:
        conn.execute(update(products).where(products.c.id == existing.id).values(**columns))
        _pass_on_to_options(conn, existing.id)
    return existing.id


_PARENT = select(products.c.id, products.c.sku, products.c.name, products.c.price, products.c.currency,
                 products.c.starts_at, products.c.option_of, products.c.queued, products.c.per_buyer, products.c.paused,
                 products.c.draw, products.c.entries_close)


def _start_not_passed(conn: Connection, columns: dict, existing) -> None:
    """A start may move, later or earlier, until it has come (by the database's clock): after that the
    drop's line has been drawn and its seed shown, and the start is history. Raises InvalidField."""
    if "starts_at" not in columns:
        return
    current = conn.execute(select(products.c.starts_at).where(products.c.id == existing.id)).scalar()
    if current is not None and columns["starts_at"] != current and current <= utcnow():
        raise InvalidField("starts_at", f"has passed ({zoned_text(current, shop_zone())}): a start cannot move once it came")


def product_by_id_or_sku(conn: Connection, named: str) -> int | None:
    """The product an owner names: by its id (digits) or its SKU. None when there is none."""
    named = str(named).strip()
    if re.fullmatch(r"[1-9][0-9]{0,9}", named):
        found = conn.execute(select(products.c.id).where(products.c.id == int(named))).scalar()
        if found is not None:
            return found
    return conn.execute(select(products.c.id).where(products.c.sku == named)).scalar()


def _draw_window(conn: Connection, columns: dict, existing) -> None:
    """A draw takes entries from its start until ``entries_close``, at most MAX_DRAW_WINDOW later; it
    has no line; its close may move until it has come (then the draw is under way). Raises InvalidField."""
    current = (conn.execute(select(products.c.draw, products.c.starts_at, products.c.entries_close, products.c.queued)
                            .where(products.c.id == existing.id)).one() if existing is not None else None)

    def now_or_current(column, default=None):
        return columns[column] if column in columns else (getattr(current, column) if current is not None else default)

    draw, starts_at = now_or_current("draw", False), now_or_current("starts_at")
    entries_close, queued = now_or_current("entries_close"), now_or_current("queued", False)
    if current is not None and "entries_close" in columns and current.entries_close is not None \
            and columns["entries_close"] != current.entries_close and current.entries_close <= utcnow() and current.draw:
        raise InvalidField("entries_close", f"has passed ({zoned_text(current.entries_close, shop_zone())}): "
                                            "the draw is under way")
    if not draw:
        return
    if starts_at is None:
        raise InvalidField("draw", "a draw's entries open at its start time: give starts_at too")
    if queued:
        raise InvalidField("draw", "a drop is sold by a draw or through a line, not both: set queue to no")
    if entries_close is None:
        raise InvalidField("entries_close", "a draw needs the time its entries close")
    if entries_close <= starts_at:
        raise InvalidField("entries_close", "must be after starts_at")
    if entries_close - starts_at > MAX_DRAW_WINDOW:
        raise InvalidField("entries_close", "must be at most 5 days after starts_at: a card authorisation "
                                            "lasts 7, and the winners are charged after the close")


def _queue_needs_a_start(conn: Connection, columns: dict, existing) -> None:
    """A waiting room opens before a start time: a queued product without one is refused."""
    current = (conn.execute(select(products.c.queued, products.c.starts_at).where(products.c.id == existing.id)).one()
               if existing is not None else None)
    queued = columns.get("queued", current.queued if current is not None else False)
    starts_at = columns["starts_at"] if "starts_at" in columns else (current.starts_at if current is not None else None)
    if queued and starts_at is None:
        raise InvalidField("queue", QUEUE_NEEDS_A_START)


def _as_option(conn: Connection, columns: dict, existing) -> None:
    """An option's columns from its product: its id, the name both make, the price and currency
    unless given, the start time always. Raises InvalidField."""
    sku = columns.pop("option_of_sku", None)
    label = columns.get("option_label")
    if sku is None:
        if existing is None:
            return
        option_of = conn.execute(select(products.c.option_of).where(products.c.id == existing.id)).scalar()
        if option_of is None:
            if label is not None:
                raise InvalidField("option", "only an option has a label: give option_of too")
            return
        parent = conn.execute(_PARENT.where(products.c.id == option_of)).one()
        _same_start_or_none(columns, parent)
        _same_queue_or_none(columns, parent)
        _same_as_its_product(columns, parent)
        if label is not None or "name" in columns:
            label = label or conn.execute(select(products.c.option_label).where(products.c.id == existing.id)).scalar()
            columns["name"] = f"{parent.name} — {label}"
        return
    parent = conn.execute(_PARENT.where(products.c.sku == sku)).first()
    if parent is None:
        raise InvalidField("option_of", f"no product has the SKU {sku}")
    if parent.option_of is not None or (existing is not None and parent.id == existing.id):
        raise InvalidField("option_of", f"{sku} is an option itself: options hang from a product")
    _same_start_or_none(columns, parent)
    _same_queue_or_none(columns, parent)
    _same_as_its_product(columns, parent)
    if label is None:
        label = conn.execute(select(products.c.option_label).where(products.c.id == existing.id)).scalar()
    columns.update(option_of=parent.id, name=f"{parent.name} — {label}", starts_at=parent.starts_at,
                   queued=parent.queued, per_buyer=parent.per_buyer, paused=parent.paused, draw=parent.draw,
                   entries_close=parent.entries_close)
    columns.setdefault("price", parent.price)
    columns.setdefault("currency", parent.currency)


def _same_start_or_none(columns: dict, parent) -> None:
    """An option's start time is its product's: a row may repeat it (an export does), never differ."""
    if "starts_at" not in columns:
        return
    starts_at = columns.pop("starts_at")
    if starts_at is not None and starts_at != parent.starts_at:
        raise InvalidField("starts_at", f"is the product's ({zoned_text(parent.starts_at, shop_zone()) if parent.starts_at else 'none'})"
                           f": set it on {parent.sku}")


def _same_queue_or_none(columns: dict, parent) -> None:
    """An option shares its product's waiting room: a row may repeat whether it has one, never differ."""
    if "queued" in columns and columns.pop("queued") != parent.queued:
        raise InvalidField("queue", f"is the product's ({'yes' if parent.queued else 'no'}): set it on {parent.sku}")


def _same_as_its_product(columns: dict, parent) -> None:
    """An option's limit per buyer, pause and draw are its product's: a row may repeat them, never differ."""
    for column, field, shown in (("per_buyer", "per_buyer", lambda v: "none" if v is None else str(v)),
                                 ("paused", "paused", lambda v: "yes" if v else "no"),
                                 ("draw", "draw", lambda v: "yes" if v else "no")):
        if column in columns and columns.pop(column) != getattr(parent, column):
            raise InvalidField(field, f"is the product's ({shown(getattr(parent, column))}): set it on {parent.sku}")
    # Like its start: an empty cell says nothing; a time that differs is refused.
    if (entries_close := columns.pop("entries_close", None)) is not None and entries_close != parent.entries_close:
        shown = zoned_text(parent.entries_close, shop_zone()) if parent.entries_close else "none"
        raise InvalidField("entries_close", f"is the product's ({shown}): set it on {parent.sku}")


def _pass_on_to_options(conn: Connection, product_id: int) -> None:
    """A product's name, start time, waiting room, limit per buyer, pause and draw are its options' too."""
    product = conn.execute(select(products.c.name, products.c.starts_at, products.c.queued, products.c.per_buyer,
                                  products.c.paused, products.c.draw, products.c.entries_close)
                           .where(products.c.id == product_id)).one()
    conn.execute(update(products).where(products.c.option_of == product_id).values(
        name=literal(f"{product.name} — ") + products.c.option_label, starts_at=product.starts_at,
        queued=product.queued, per_buyer=product.per_buyer, paused=product.paused, draw=product.draw,
        entries_close=product.entries_close))


def option_currency(conn: Connection, values: dict) -> str | None:
    """The currency of the product an option names (its prices are in it), if it exists."""
    sku = values.get("option_of")
    if not sku:
        return None
    return conn.execute(select(products.c.currency).where(products.c.sku == str(sku).strip())).scalar()


def add_product(conn: Connection, values: dict, image: str | None = None) -> int:
    """Add a product, or an option of one; ``image`` is a stored photo (catalog/images.py). Raises InvalidField."""
    columns = parse_product(values, current_currency=option_currency(conn, values))
    if image:
        columns["image"] = image
    if conn.execute(select(products.c.id).where(products.c.sku == columns["sku"])).first() is not None:
        raise InvalidField("sku", f"{columns['sku']} is taken")
    product_id = _write(conn, columns, None)
    return product_id


def update_product(conn: Connection, product_id: int, values: dict, image: str | None = None) -> bool:
    """Change the given fields of a product (and its photo). False for an unknown id."""
    existing = conn.execute(select(products.c.id, products.c.currency, products.c.starts_at, products.c.entries_close)
                            .where(products.c.id == product_id)).first()
    if existing is None:
        return False
    columns = parse_product(values, partial=True, current_currency=existing.currency,
                            current_starts_at=existing.starts_at, current_entries_close=existing.entries_close)
    if image:
        columns["image"] = image
    if "sku" in columns and conn.execute(select(products.c.id).where(
            products.c.sku == columns["sku"], products.c.id != product_id)).first() is not None:
        raise InvalidField("sku", f"{columns['sku']} is taken")
    _write(conn, columns, existing)
    return True


def archive_product(conn: Connection, product_id: int, archived: bool = True) -> bool:
    """Retire a product and its options (or bring them back): they leave the catalogue and take no new holds.

    Its live holds still complete or lapse as usual; orders and history keep it.
    False for an unknown id.
    """
    changed = conn.execute(update(products).where(products.c.id == product_id)
                           .values(archived_at=utcnow() if archived else None).returning(products.c.id)).first()
    if changed is not None:  # its options go and come back with it
        conn.execute(update(products).where(products.c.option_of == product_id)
                     .values(archived_at=utcnow() if archived else None))
    return changed is not None


def import_rows(conn: Connection, rows: list[dict]) -> tuple[int, int]:
    """Add or update a product per row, by sku; every row or none. Returns (added, updated).

    Rows are numbered as in the file, the header being row 1. Raises CatalogRefused.
    """
    problems, parsed, seen, currencies = [], [], {}, {}
    rows = [{name: from_spreadsheet_cell(value) for name, value in row.items()} for row in rows]
    for number, row in enumerate(rows, start=2):
        unknown = sorted(set(row) - set(FIELDS) - {None})
        if unknown:
            problems.append(InvalidField(unknown[0], "is not a column this import knows", number))
            continue
        option_of = str(row.get("option_of") or "").strip()
        # The start already set: its product's for an option (whose row may repeat it), else its own.
        current = conn.execute(select(products.c.starts_at, products.c.entries_close).where(
            products.c.sku == (option_of or str(row.get("sku") or "").strip()))).first()
        try:
            columns = parse_product(row, current_currency=currencies.get(option_of) or option_currency(conn, row),
                                    current_starts_at=current.starts_at if current else None,
                                    current_entries_close=current.entries_close if current else None)
        except InvalidField as invalid:
            problems.append(InvalidField(invalid.field, invalid.message, number))
            continue
        if columns["sku"] in seen:
            problems.append(InvalidField("sku", f"{columns['sku']} is also on row {seen[columns['sku']]}", number))
            continue
        seen[columns["sku"]] = number
        parsed.append((number, columns))
        currencies[columns["sku"]] = columns.get("currency")
    if not rows:
        problems.append(InvalidField("file", "has no rows under its header", 1))
    if problems:
        raise CatalogRefused(problems)

    added = updated = 0
    for number, columns in parsed:
        existing = conn.execute(select(products.c.id).where(products.c.sku == columns["sku"])).first()
        try:
            _write(conn, columns, existing)
        except InvalidField as invalid:
            problems.append(InvalidField(invalid.field, invalid.message, number))
            continue
        added, updated = (added + 1, updated) if existing is None else (added, updated + 1)
    if problems:
        raise CatalogRefused(problems)
    return added, updated


def export_csv(conn: Connection) -> str:
    """The catalogue as the import reads it (FIELDS), each product followed by its options:
    imported back unchanged, it changes nothing; edited, it changes what was edited. Prices
    are in major units as an owner types them, times in the shop's zone with their offset (exact,
so read back as the same moment). Archived products stay out."""
    rows = conn.execute(
        select(products.c.id, products.c.sku, products.c.name, products.c.description, products.c.price,
               products.c.currency, products.c.starts_at, products.c.option_of, products.c.option_label,
               products.c.queued, products.c.per_buyer, products.c.paused, products.c.draw, products.c.entries_close)
        .where(products.c.archived_at.is_(None)).order_by(products.c.id)).all()
    totals = {product_id: stock.total for product_id, stock in stock_levels(conn, [row.id for row in rows]).items()}
    zone = shop_zone()
    skus = {row.id: row.sku for row in rows}
    options = {}
    for row in rows:
        if row.option_of is not None:
            options.setdefault(row.option_of, []).append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        if row.option_of is not None:
            continue
        for product in [row, *options.get(row.id, [])]:
            writer.writerow([spreadsheet_cell(value) for value in (
                product.sku, product.name, product.description, price_text(product.price, product.currency),
                product.currency, totals.get(product.id, 0),
                zoned_text(product.starts_at, zone) if product.starts_at else "",
                skus.get(product.option_of, ""), product.option_label or "", "yes" if product.queued else "no",
                "" if product.per_buyer is None else product.per_buyer, "yes" if product.paused else "no",
                "yes" if product.draw else "no", zoned_text(product.entries_close, zone) if product.entries_close else "",
            )])
    return out.getvalue()


@dataclass(frozen=True)
class RowChange:
    """What an import did to one product, as the export writes it: ``added``, or each field changed
    as (field, before, after)."""
    sku: str
    added: bool
    fields: tuple[tuple[str, str, str], ...]


def _catalogue_by_sku(conn: Connection) -> dict[str, dict]:
    return {row["sku"]: row for row in csv.DictReader(io.StringIO(export_csv(conn)))}


def import_with_changes(conn: Connection, rows: list[dict]) -> list[RowChange]:
    """Import ``rows`` (:func:`import_rows`, all or nothing) and say what it changed, product by product,
    as the export reads before and after: a preview is this in a transaction rolled back, and applying
    it again checks that the same changes come out. Raises CatalogRefused."""
    before = _catalogue_by_sku(conn)
    import_rows(conn, rows)
    changes = []
    for sku, row in _catalogue_by_sku(conn).items():
        old = before.get(sku)
        if old is None:
            changes.append(RowChange(sku, True, tuple((name, "", row[name]) for name in FIELDS
                                                      if name != "sku" and row[name] != "")))
        elif differing := tuple((name, old[name], row[name]) for name in FIELDS if old[name] != row[name]):
            changes.append(RowChange(sku, False, differing))
    return changes


def changes_digest(changes: list[RowChange]) -> str:
    """A preview's fingerprint: the same changes, the same digest."""
    return hashlib.sha256(json.dumps([[change.sku, change.added, change.fields] for change in changes]).encode()
                          ).hexdigest()


def uploaded_text(data: bytes) -> str:
    """An uploaded file's text (UTF-8, with or without a byte-order mark, as spreadsheets save it).
    Raises CatalogRefused naming the file when it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CatalogRefused([InvalidField("file", "must be UTF-8 text: save it from the spreadsheet as "
                                                   "CSV UTF-8", 1)]) from None


def csv_rows(text: str) -> list[dict]:
    """The rows of a catalogue's CSV text. Raises CatalogRefused naming the file when it is not CSV."""
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise CatalogRefused([InvalidField("file", f"is not a CSV file this import reads ({error})", 1)]) from None
