"""Orders to fulfil: paid and not shipped first, with where to send them; mark shipped; CSV export."""

import logging
import re
import uuid

from flask import render_template, request

from storefront.admin import bp
from storefront.admin.downloads import csv_download
from storefront.database import reading
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.orders.book import NotShippable, mark_shipped, orders_csv, paid_orders
from storefront.orders.confirmation import tell_shipped_later

log = logging.getLogger(__name__)
ORDERS_PER_PAGE = 200
# A carrier's reference, or its tracking link (https://…, sent to the shopper as a link).
_TRACKING = re.compile(r"^[\w .:/#?=&%+~-]{0,100}$")


@bp.get("/orders")
def orders_page():
    with reading() as conn:
        orders = paid_orders(conn, ORDERS_PER_PAGE)
    return render_template("admin/orders.html", orders=orders,
                           to_fulfil=sum(1 for order in orders if order.to_fulfil))


@bp.get("/orders.csv")
def orders_export():
    with reading() as conn:
        return csv_download(orders_csv(paid_orders(conn, limit=100_000)), "orders")


@bp.post("/orders/<order>/ship")
def ship_order(order: str):
    try:
        order_id = uuid.UUID(order)
    except ValueError:
        raise not_found("No such order.") from None
    tracking = " ".join((request.form.get("tracking") or "").split())
    if not _TRACKING.match(tracking):
        raise ApiError(400, "invalid_request", "A tracking reference or link is up to 100 letters, digits and . : / # ? = & % + ~ -",
                       field="tracking")
    try:
        with db.engine.begin() as conn:
            shipped = mark_shipped(conn, order_id, tracking)
    except NotShippable as refused:
        raise ApiError(409, "not_shippable", f"Only a paid order can be shipped; this one is {refused}.") from None
    if shipped is None:
        raise not_found("No such order.")
    log.info("admin marked order %s shipped", shipped.reference)
    tell_shipped_later(order_id)  # once: marking again changes the tracking reference only
    return render_template("admin/_order_row.html", order=shipped)
