"""The shopper's orders: the list, and one order's page. Only for the browser that placed them."""

import uuid

from flask import Blueprint, jsonify, render_template

from storefront.clock import isoformat_z, utcnow
from storefront.database import reading
from storefront.errors import ApiError
from storefront.htmx import wants_fragment
from storefront.inventory.holds import hold_json
from storefront.orders.book import holds_of, order_of, orders_of, reference_of
from storefront.orders.delivery import countries
from storefront.owners import requesting_owner
from storefront.params import reservation_id

bp = Blueprint("orders", __name__)
ORDERS_SHOWN = 100


@bp.app_template_global("order_reference")
def order_reference(order_id: uuid.UUID) -> str:
    return reference_of(order_id)


@bp.app_template_global("delivery_countries")
def delivery_countries() -> list[tuple[str, str]]:
    return countries()


def _order_id(value: str) -> uuid.UUID:
    try:
        return reservation_id(value)
    except ApiError:
        raise ApiError(404, "not_found", "No such order.") from None


@bp.get("/api/orders")
def show_orders():
    """The owner's holds and purchases, newest first: one item per hold, with its order's reference."""
    owner = requesting_owner()
    with reading() as conn:
        rows = holds_of(conn, owner, ORDERS_SHOWN)
    now = utcnow()
    return jsonify({"orders": [
        {**hold_json(row, now), "checkoutId": str(row.checkout_id) if row.checkout_id else None,
         "orderId": str(row.checkout_id or row.id), "reference": reference_of(row.checkout_id or row.id),
         "productName": row.product_name, "createdAt": isoformat_z(row.created_at)}
        for row in rows]})


@bp.get("/orders")
def orders_page():
    if not wants_fragment():
        return render_template("orders/orders.html")
    owner = requesting_owner()
    with reading() as conn:
        return render_template("orders/_orders.html", orders=orders_of(conn, owner, ORDERS_SHOWN))


@bp.get("/orders/<order>")
def order_page(order: str):
    order_id = _order_id(order)
    if not wants_fragment():
        return render_template("orders/order.html", order_id=order_id)
    with reading() as conn:
        found = order_of(conn, order_id, requesting_owner())
    if found is None:
        raise ApiError(404, "not_found", "No such order.")
    return render_template("orders/_order.html", order=found)
