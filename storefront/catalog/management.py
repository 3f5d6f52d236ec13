"""Changing the catalogue: products added and updated, one at a time or from a CSV file.

Every value is checked before anything is written, and a whole file is imported in
one transaction or not at all, naming the row and the field that stopped it. A new
total never goes below what is sold and held (checked under the product's lock, as
``stock set`` does). A price change never changes a hold already placed: a hold keeps
the amount it was placed at.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from storefront.clock import utcnow
from storefront.inventory.stock import BelowCommitted, lock_product, products, release_lapsed_holds, spread_total
from storefront.money import InvalidAmount, currency, minor_units

FIELDS = ("sku", "name", "description", "price", "currency", "total", "starts_at")
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
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


def _moment(text: str) -> datetime:
    """A start time as ISO 8601 with its zone (``2026-01-01T10:00:00Z``), kept in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField("starts_at", "must be a moment such as 2026-01-01T10:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidField("starts_at", "must say its time zone, as in 2026-01-01T10:00:00Z")
    return moment.astimezone(UTC)


def parse_product(values: dict, *, partial: bool = False, current_currency: str | None = None) -> dict:
    """Check the given fields and turn them into column values. ``partial``: only those given,
    a price then being in ``current_currency`` (the product's) unless a currency is given too."""
    columns = {}

    def given(field):
        value = values.get(field)
        return None if value is None or (isinstance(value, str) and value.strip() == "") else str(value).strip()

    for field in ("sku", "name", "price", "total"):
        if not partial and given(field) is None:
            raise InvalidField(field, "is required")
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
        columns["currency"] = "usd"
    if (price := given("price")) is not None:
        try:
            columns["price"] = minor_units(price, columns.get("currency") or current_currency or "usd")
        except InvalidAmount as invalid:
            raise InvalidField("price", str(invalid)) from None
    elif "currency" in columns and partial:
        raise InvalidField("price", "give the price in the new currency too")
    if values.get("starts_at") is not None:  # "" clears it
        columns["starts_at"] = _moment(str(values["starts_at"]).strip()) if str(values["starts_at"]).strip() else None
    if (total := given("total")) is not None:
        if not re.fullmatch(r"\d{1,9}", total):
            raise InvalidField("total", "must be a whole number from 0 to 999,999,999")
        columns["total"] = int(total)
    return columns


def _write(conn: Connection, columns: dict, existing) -> int:
    """Insert or update one product under its lock; raises InvalidField for a total too low."""
    columns = dict(columns)
    total = columns.pop("total", None)
    if existing is None:
        product_id = conn.execute(insert(products).values(**columns, created_at=utcnow()).returning(products.c.id)
                                  ).scalar_one()
        spread_total(conn, product_id, total or 0)
        return product_id
    lock_product(conn, existing.id)
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
    return existing.id


def add_product(conn: Connection, values: dict, image: str | None = None) -> int:
    """Add a product; ``image`` is a stored photo (catalog/images.py). Raises InvalidField."""
    columns = parse_product(values)
    if image:
        columns["image"] = image
    if conn.execute(select(products.c.id).where(products.c.sku == columns["sku"])).first() is not None:
        conn.rollback()
        raise InvalidField("sku", f"{columns['sku']} is taken")
    product_id = _write(conn, columns, None)
    conn.commit()
    return product_id


def update_product(conn: Connection, product_id: int, values: dict, image: str | None = None) -> bool:
    """Change the given fields of a product (and its photo). False for an unknown id."""
    existing = conn.execute(select(products.c.id, products.c.currency).where(products.c.id == product_id)).first()
    if existing is None:
        conn.rollback()
        return False
    columns = parse_product(values, partial=True, current_currency=existing.currency)
    if image:
        columns["image"] = image
    if "sku" in columns and conn.execute(select(products.c.id).where(
            products.c.sku == columns["sku"], products.c.id != product_id)).first() is not None:
        conn.rollback()
        raise InvalidField("sku", f"{columns['sku']} is taken")
    try:
        _write(conn, columns, existing)
    except InvalidField:
        conn.rollback()
        raise
    conn.commit()
    return True


def archive_product(conn: Connection, product_id: int, archived: bool = True) -> bool:
    """Retire a product (or bring it back): it leaves the catalogue and takes no new holds.

    Its live holds still complete or lapse as usual; orders and history keep it.
    False for an unknown id.
    """
    changed = conn.execute(update(products).where(products.c.id == product_id)
                           .values(archived_at=utcnow() if archived else None).returning(products.c.id)).first()
    conn.commit()
    return changed is not None


def import_rows(conn: Connection, rows: list[dict]) -> tuple[int, int]:
    """Add or update a product per row, by sku; every row or none. Returns (added, updated).

    Rows are numbered as in the file, the header being row 1. Raises CatalogRefused.
    """
    problems, parsed, seen = [], [], {}
    for number, row in enumerate(rows, start=2):
        unknown = sorted(set(row) - set(FIELDS) - {None})
        if unknown:
            problems.append(InvalidField(unknown[0], "is not a column this import knows", number))
            continue
        try:
            columns = parse_product(row)
        except InvalidField as invalid:
            problems.append(InvalidField(invalid.field, invalid.message, number))
            continue
        if columns["sku"] in seen:
            problems.append(InvalidField("sku", f"{columns['sku']} is also on row {seen[columns['sku']]}", number))
            continue
        seen[columns["sku"]] = number
        parsed.append((number, columns))
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
        conn.rollback()
        raise CatalogRefused(problems)
    conn.commit()
    return added, updated
