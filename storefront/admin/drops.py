"""A drop as its owner watches it: one product and its options, from the start to now.

Per item: units total, held now, sold, left; holds placed, paid, lapsed and released; paid /
placed; the time from the start to sold out; holds, sales and lapses over time, drawn as SVG on
the server, at the drop's pace (per second while it is two minutes old, per ten seconds until
twenty, then per minute: a scarce drop sells out in seconds); and a queued drop's line. Every figure is read from the holds of the drop's window (created from its
start on) through the index ``ix_holds_product_created``: a table with millions of holds from
before costs the page nothing, and the shop's hot paths read none of it.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import logging

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import Connection, Integer, case, cast, func, literal_column, select

from storefront.admin import bp
from storefront.admin.log import recent_actions, record_action
from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.formatting import shop_datetime
from storefront.inventory import draw, queue
from storefront.inventory.hold_rows import lapsed as lapsed_at
from storefront.inventory.hold_rows import live as live_at
from storefront.inventory.models import Draw, DrawEntry, Hold, QueueEntry
from storefront.inventory.stock import add_units, stock_levels, unit_counts
from storefront.listings.management import InvalidField, update_product
from storefront.shop_zone import picker_value, shop_zone

log = logging.getLogger(__name__)
MAX_UNITS_ADDED = 1_000_000

holds = Hold.__table__
CHART_POINTS = 120  # the chart's width: the last 120 steps of the drop at most
CHART_AXIS_POINTS = 10  # and its axis ten steps at least, so a young drop draws from the left, not as one point
# The chart's step by the drop's age: (up to this age in seconds, step in seconds).
CHART_STEPS = ((120, 1), (1200, 10))
CHART_STEP_LATER = 60


@dataclass
class ItemFigures:
    product: Product
    total: int = 0
    held: int = 0
    sold: int = 0
    left: int = 0
    placed: int = 0
    paid: int = 0
    lapsed: int = 0
    released: int = 0
    sold_out_at: datetime | None = None

    @property
    def paid_share(self) -> float | None:
        return self.paid / self.placed if self.placed else None


@dataclass
class Drop:
    product: Product
    start: datetime
    now: datetime
    items: list[ItemFigures]
    first_step: int = 0
    step_seconds: int = 60
    counts: dict[str, list[int]] = field(default_factory=dict)  # placed, paid, lapsed: a count per step
    line: dict | None = None  # a queued drop's line: joined, admitted, held, expired, closed, and its seed
    drawing: dict | None = None  # a draw: entries per size over the window, then winners, forfeits, captures
    actions: list = field(default_factory=list)  # the admin log's newest lines about it

    @property
    def sold_out_after(self) -> timedelta | None:
        """From the start until the last item sold out; None while any is left."""
        moments = [item.sold_out_at for item in self.items]
        if not moments or any(moment is None for moment in moments):
            return None
        return max(moments) - self.start


def _step(column, start: datetime, dialect: str, seconds: int):
    """Whole steps of ``seconds`` from ``start`` to ``column``, in the database."""
    if dialect == "sqlite":
        return cast((func.julianday(column) - func.julianday(start.replace(tzinfo=None).isoformat(" ")))
                    * 86400 / seconds, Integer)
    return func.floor(func.extract("epoch", column - start) / seconds)


def step_for(age_seconds: float) -> int:
    """The chart's step for a drop this old."""
    return next((step for up_to, step in CHART_STEPS if age_seconds <= up_to), CHART_STEP_LATER)


def drop_of(conn: Connection, product: Product, now: datetime | None = None) -> Drop:
    now = now or utcnow()
    products = _options_of(product) or [product]
    start = product.starts_at or product.created_at
    ids = [item.id for item in products]
    levels = stock_levels(conn, ids, now)
    counts = unit_counts(conn, ids)
    items = {item.id: ItemFigures(item) for item in products}
    in_window = (holds.c.product_id.in_(ids), holds.c.created_at >= start)
    live = live_at(now)
    lapsed = (holds.c.status == literal_column("'EXPIRED'")) | lapsed_at(now)
    paid = holds.c.status == literal_column("'COMPLETED'")
    taken = live | paid  # the holds that have the units now: the last of them emptied the shelf

    def units(condition):
        return func.coalesce(func.sum(case((condition, holds.c.quantity), else_=0)), 0)

    def count(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = conn.execute(
        select(holds.c.product_id, func.count(), count(paid), count(lapsed),
               count(holds.c.status == literal_column("'CANCELLED'")), units(live), units(paid),
               func.max(case((taken, holds.c.created_at))))
        .where(*in_window).group_by(holds.c.product_id))
    for product_id, placed, paid_count, lapsed_count, released, held, sold, last_taken in rows:
        figures = items[product_id]
        figures.placed, figures.paid, figures.lapsed, figures.released = placed, paid_count, lapsed_count, released
        figures.held, figures.sold = held, sold
        figures.sold_out_at = last_taken
    for item in items.values():
        stock = levels.get(item.product.id)
        item.total, item.left = (stock.total, stock.available) if stock else (0, 0)
        if item.left > 0 or item.total == 0:
            item.sold_out_at = None
        item.sold = counts[item.product.id].sold  # all its sales, from its buckets, as the stock check counts
        item.held = max(item.total - item.sold - item.left, 0)

    dialect = conn.dialect.name
    age = (now - start).total_seconds()
    seconds = step_for(age)
    last_step = max(0, math.floor(age / seconds))
    first_step = max(0, last_step - CHART_POINTS + 1)
    counts = {name: [0] * (last_step - first_step + 1) for name in ("placed", "paid", "lapsed")}
    for name, moment, condition in (("placed", holds.c.created_at, None), ("paid", holds.c.updated_at, paid),
                                    ("lapsed", holds.c.expires_at, lapsed)):
        step = _step(moment, start, dialect, seconds).label("step")
        query = select(step, func.count()).where(*in_window).group_by(step)
        if condition is not None:
            query = query.where(condition)
        for at, number in conn.execute(query):
            if at is not None and first_step <= int(at) <= last_step:
                counts[name][int(at) - first_step] += number
    line = _line(conn, product, now) if product.queued else None
    drawing = _drawing(conn, product, now) if product.draw else None
    return Drop(product, start, now, list(items.values()), first_step, seconds, counts, line=line,
                drawing=drawing, actions=recent_actions(conn, [product.id, *ids]))


DRAW_PERIODS = 12  # the window's entries per size, in this many periods


def _drawing(conn: Connection, product: Product, now: datetime) -> dict:
    """A draw in figures: entries per size over the window (by when each was authorised), then its
    outcomes per size (won and captured, forfeited, lost), and the seed (its hash until the draw)."""
    entries = DrawEntry.__table__
    found = draw.draw_product(conn, product.id)
    row = conn.execute(select(Draw).where(Draw.product_id == product.id)).first()
    opens, closes = found.opens_at, found.closes_at
    period = (closes - opens) / DRAW_PERIODS
    per_period = {item: [0] * DRAW_PERIODS for item in found.item_ids}
    for entered_at, item in draw.entries_over_time(conn, found):
        index = min(max(int((entered_at - opens) / period), 0), DRAW_PERIODS - 1)
        per_period[item][index] += 1
    statuses = {item: {} for item in found.item_ids}
    for item, status, number, amount in conn.execute(
            select(func.coalesce(entries.c.won_product_id, entries.c.choice_id), entries.c.status, func.count(),
                   func.coalesce(func.sum(entries.c.amount), 0))
            .where(entries.c.product_id == product.id).group_by(func.coalesce(entries.c.won_product_id,
                                                                              entries.c.choice_id), entries.c.status)):
        statuses.setdefault(item, {})[status] = (number, amount)
    drawn = row is not None and row.walked_at is not None
    return {"labels": found.labels, "periods": [opens + period * index for index in range(DRAW_PERIODS)],
            "per_period": per_period, "statuses": statuses, "opens_at": opens, "closes_at": closes,
            "state": draw.state_of(found, row, now), "seed_hash": row.seed_hash if row else None,
            "seed": row.seed.hex() if drawn else None, "walked_through": row.walked_through if row else 0,
            "captured": sum(amount for by_status in statuses.values() for status, (_, amount) in by_status.items()
                            if status == "won"), "currency": next(iter(found.prices.values()))[1]}


def _line(conn: Connection, product: Product, now: datetime) -> dict:
    """A queued drop's line in figures: its places by status, and the seed (its hash until the start)."""
    entries = QueueEntry.__table__
    line = queue.queued_product(conn, product.id, current_app.config["STOREFRONT"].queue_opens_before_seconds)
    room = queue.room_as_it_is(conn, line)
    admitted, held = entries.c.admitted_at.is_not(None), entries.c.held_at.is_not(None)
    expired = admitted & entries.c.held_at.is_(None) & (entries.c.pass_expires_at <= now)
    joined, admitted_count, held_count, expired_count = conn.execute(
        select(func.count(), func.count().filter(admitted), func.count().filter(held), func.count().filter(expired))
        .select_from(entries).where(entries.c.product_id == product.id)).one()
    sold_out = queue.sold_out(conn, line)
    started = now >= line.starts_at
    waiting = joined - admitted_count
    return {"closed_at": room.closed_at if room else None, "opened": now >= line.opens_at,
            "joined": joined, "admitted": admitted_count, "held": held_count, "expired": expired_count,
            "closed": waiting if (started and sold_out) or (room and room.closed_at) else 0,
            "waiting": 0 if (started and sold_out) or (room and room.closed_at) else waiting,
            "admitted_through": room.admitted_through if room else 0,
            "seed_hash": room.seed_hash if room else None,
            "seed": room.seed.hex() if room is not None and started else None}


def since_start(seconds: int) -> str:
    """An offset from the start as a chart's axis says it: 0:40, 12:00, 2:05:00."""
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def chart(drop: Drop, width: int = 720, height: int = 220) -> dict:
    """The series as SVG coordinates: a polyline and markers per series."""
    length = len(drop.counts["placed"])
    axis = max(length, CHART_AXIS_POINTS)  # steps still to come stay blank, not drawn as zeros
    top = max([1] + [value for series in drop.counts.values() for value in series])
    left_pad, bottom_pad = 40, 24
    step = (width - left_pad - 10) / (axis - 1)

    def point(index, value):
        return (round(left_pad + index * step, 1), round(height - bottom_pad - value * (height - bottom_pad - 10) / top, 1))

    series = {name: [point(index, value) for index, value in enumerate(values)] for name, values in drop.counts.items()}
    step = drop.step_seconds
    unit = {1: "second", 10: "10 seconds", 60: "minute"}.get(step, f"{step} seconds")
    return {"width": width, "height": height, "top": top, "series": series, "left": left_pad,
            "bottom": height - bottom_pad, "first": drop.first_step, "length": length, "axis": axis, "unit": unit,
            "from": since_start(drop.first_step * step), "to": since_start((drop.first_step + axis - 1) * step),
            "labels": [since_start((drop.first_step + index) * step) for index in range(length)]}


def _drop_product(product_id: int) -> Product:
    """The drop a product or one of its options belongs to."""
    product = db.session.get(Product, product_id)
    if product is None:
        raise not_found("No such product.")
    if product.option_of is not None:
        product = db.session.get(Product, product.option_of)
    return product


def _drop_page(product_id: int, template: str, error: InvalidField | None = None, status: int = 200):
    drop = drop_of(db.session.connection(), _drop_product(product_id))
    start_value = request.form.get("starts_at") if error else picker_value(drop.product.starts_at, shop_zone())
    return render_template(template, drop=drop, chart=chart(drop), error=error, start_value=start_value), status


@bp.get("/drops/<product_id:product_id>")
def drop_page(product_id: int):
    return _drop_page(product_id, "admin/drop.html")


def _back_to_the_drop(product_id: int, message: str):
    flash(message)
    return redirect(url_for("admin.drop_page", product_id=product_id), 303)


@bp.post("/drops/<product_id:product_id>/start")
def move_start(product_id: int):
    """Move the drop's start, later or earlier, until it has come (listings/management.py refuses after)."""
    product = _drop_product(product_id)
    before = product.starts_at
    db.session.rollback()  # the update takes the product's lock on its own connection
    text = (request.form.get("starts_at") or "").strip()
    try:
        if not text:
            raise InvalidField("starts_at", "give the new start; a start already passed cannot move")
        with db.engine.begin() as conn:
            update_product(conn, product.id, {"starts_at": text})
            after = conn.execute(select(Product.starts_at).where(Product.id == product.id)).scalar_one()
            record_action(conn, product.id, "move_start",
                          f"Moved the start from {shop_datetime(before) or 'none'} to {shop_datetime(after)}.")
    except InvalidField as invalid:
        return _drop_page(product.id, "admin/drop.html", invalid, 400)
    log.info("admin moved the start of product %s from %s", product.id, request.remote_addr)
    return _back_to_the_drop(product.id, f"The start is now {shop_datetime(after)}.")


@bp.post("/drops/<product_id:product_id>/stock")
def add_stock(product_id: int):
    """Add units to one of the drop's items (a size, or the product itself): on sale at once."""
    product = _drop_product(product_id)
    item_id = request.form.get("item", type=int)
    item = db.session.get(Product, item_id) if item_id else None
    if item is None or item.id not in (product.id, *(option.id for option in _options_of(product))):
        raise ApiError(400, "invalid_request", "Choose one of this drop's items.", field="item")
    units = (request.form.get("units") or "").strip()
    if not (units.isascii() and units.isdigit() and 1 <= int(units) <= MAX_UNITS_ADDED):
        error = InvalidField("units", f"must be a whole number from 1 to {MAX_UNITS_ADDED:,}")
        return _drop_page(product.id, "admin/drop.html", error, 400)
    label = item.option_label or item.name
    db.session.rollback()
    with db.engine.begin() as conn:
        before, stock = add_units(conn, item.id, int(units))
        record_action(conn, item.id, "add_stock",
                      f"Added {units} to {label}: total {before} → {stock.total}, {stock.available} left.")
    log.info("admin added %s units to product %s from %s", units, item.id, request.remote_addr)
    return _back_to_the_drop(product.id, f"Added {units} to {label}: {stock.available} left now.")


@bp.post("/drops/<product_id:product_id>/close-line")
def close_line(product_id: int):
    """Close a queued drop's line: nobody joins or is let in from now on; every waiting place is told."""
    product = _drop_product(product_id)
    if not product.queued:
        raise ApiError(409, "no_queue", "This drop has no line to close.")
    db.session.rollback()
    now = utcnow()
    try:
        with db.engine.begin() as conn:
            line = queue.queued_product(conn, product.id, current_app.config["STOREFRONT"].queue_opens_before_seconds)
            waiting = queue.close_line(conn, line, now)
            record_action(conn, product.id, "close_line",
                          f"Closed the line: {waiting} waiting {'place' if waiting == 1 else 'places'} told it is closed.")
    except queue.QueueNotOpen:
        raise ApiError(409, "queue_not_open", "The line has not opened yet: there is nobody in it to tell.") from None
    log.info("admin closed the line of product %s from %s", product.id, request.remote_addr)
    return _back_to_the_drop(product.id, f"The line is closed: {waiting} waiting {'place' if waiting == 1 else 'places'} told.")


def _options_of(product: Product) -> list[Product]:
    return db.session.execute(select(Product).where(Product.option_of == product.id).order_by(Product.id)
                              ).scalars().all()


@bp.get("/drops/<product_id:product_id>/live")
def drop_live(product_id: int):
    """The page's live part, polled every few seconds while it is open."""
    return _drop_page(product_id, "admin/_drop_live.html")
