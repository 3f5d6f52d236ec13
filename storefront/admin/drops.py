"""A drop as its owner watches it: one product and its options, from the start to now.

Per item: units total, held now, sold, left; holds placed, paid, lapsed and released; paid /
placed; the time from the start to sold out; and holds, sales and lapses per minute, drawn as
SVG on the server. Every figure is read from the holds of the drop's window (created from its
start on) through the index ``ix_holds_product_created``: a table with millions of holds from
before costs the page nothing, and the shop's hot paths read none of it.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import render_template
from sqlalchemy import Connection, Integer, case, cast, func, literal_column, select

from storefront.admin import bp
from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.errors import ApiError
from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.inventory.stock import stock_levels, unit_counts

holds = Hold.__table__
CHART_MINUTES = 120  # the chart's width: the last two hours of the drop at most
CHART_AXIS_MINUTES = 10  # and its axis ten minutes at least, so a young drop draws from the left, not as one point


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
    first_minute: int = 0
    minutes: dict[str, list[int]] = field(default_factory=dict)  # placed, paid, lapsed: a count per minute

    @property
    def sold_out_after(self) -> timedelta | None:
        """From the start until the last item sold out; None while any is left."""
        moments = [item.sold_out_at for item in self.items]
        if not moments or any(moment is None for moment in moments):
            return None
        return max(moments) - self.start


def _minute(column, start: datetime, dialect: str):
    """Whole minutes from ``start`` to ``column``, in the database."""
    if dialect == "sqlite":
        return cast((func.julianday(column) - func.julianday(start.replace(tzinfo=None).isoformat(" "))) * 1440,
                    Integer)
    return func.floor(func.extract("epoch", column - start) / 60)


def drop_of(conn: Connection, product: Product, now: datetime | None = None) -> Drop:
    now = now or utcnow()
    options = db.session.execute(select(Product).where(Product.option_of == product.id)
                                 .order_by(Product.id)).scalars().all()
    products = options or [product]
    start = product.starts_at or product.created_at
    ids = [item.id for item in products]
    levels = stock_levels(conn, ids, now)
    counts = unit_counts(conn, ids)
    items = {item.id: ItemFigures(item) for item in products}
    in_window = (holds.c.product_id.in_(ids), holds.c.created_at >= start)
    live = (holds.c.status == literal_column("'PENDING'")) & (holds.c.expires_at > now)
    lapsed = (holds.c.status == literal_column("'EXPIRED'")) | (
        (holds.c.status == literal_column("'PENDING'")) & (holds.c.expires_at <= now))
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
    last_minute = max(0, math.floor((now - start).total_seconds() / 60))
    first_minute = max(0, last_minute - CHART_MINUTES + 1)
    minutes = {name: [0] * (last_minute - first_minute + 1) for name in ("placed", "paid", "lapsed")}
    for name, moment, condition in (("placed", holds.c.created_at, None), ("paid", holds.c.updated_at, paid),
                                    ("lapsed", holds.c.expires_at, lapsed)):
        minute = _minute(moment, start, dialect).label("minute")
        query = select(minute, func.count()).where(*in_window).group_by(minute)
        if condition is not None:
            query = query.where(condition)
        for at, number in conn.execute(query):
            if at is not None and first_minute <= int(at) <= last_minute:
                minutes[name][int(at) - first_minute] += number
    return Drop(product, start, now, list(items.values()), first_minute, minutes)


def chart(drop: Drop, width: int = 720, height: int = 220) -> dict:
    """The per-minute series as SVG coordinates: a polyline and markers per series."""
    length = len(drop.minutes["placed"])
    axis = max(length, CHART_AXIS_MINUTES)  # minutes still to come stay blank, not drawn as zeros
    top = max([1] + [value for series in drop.minutes.values() for value in series])
    left_pad, bottom_pad = 40, 24
    step = (width - left_pad - 10) / (axis - 1)

    def point(index, value):
        return (round(left_pad + index * step, 1), round(height - bottom_pad - value * (height - bottom_pad - 10) / top, 1))

    series = {name: [point(index, value) for index, value in enumerate(values)] for name, values in drop.minutes.items()}
    return {"width": width, "height": height, "top": top, "series": series, "left": left_pad,
            "bottom": height - bottom_pad, "first": drop.first_minute, "length": length, "axis": axis}


def _drop_page(product_id: int, template: str):
    product = db.session.get(Product, product_id)
    if product is None:
        raise ApiError(404, "not_found", "No such product.")
    if product.option_of is not None:
        product = db.session.get(Product, product.option_of)
    drop = drop_of(db.session.connection(), product)
    return render_template(template, drop=drop, chart=chart(drop))


@bp.get("/drops/<product_id:product_id>")
def drop_page(product_id: int):
    return _drop_page(product_id, "admin/drop.html")


@bp.get("/drops/<product_id:product_id>/live")
def drop_live(product_id: int):
    """The page's live part, polled every few seconds while it is open."""
    return _drop_page(product_id, "admin/_drop_live.html")
