"""The shopper's orders: the list, and one order's page. Only for the browser that placed them, or
for whoever has the order's link from its email (orders/links.py); /orders/find emails the links again."""

import uuid

from flask import Blueprint, jsonify, render_template, request

from storefront.clock import isoformat_z, utcnow
from storefront.database import reading
from storefront.errors import ApiError, not_found
from storefront.htmx import wants_fragment
from storefront.inventory.holds import hold_json
from storefront.orders import links
from storefront.orders.book import holds_of, order_of, orders_of, paid_order_ids_of_buyer, reference_of
from storefront.orders.confirmation import send_links_later
from storefront.orders.delivery import buyer_email, countries
from storefront.owners import client_address, requesting_owner
from storefront.params import invalid, request_body, reservation_id
from storefront.ratelimit import rate_limited, record_in_database, wait_in_database

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
        raise not_found("No such order.") from None


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


# Asking for the links again: a few a client address an hour (each answer is an email to someone).
FIND_SCOPE, FINDS_PER_HOUR = "orders-find", 10


@bp.get("/orders/find")
def find_page():
    return render_template("orders/find.html")


@bp.post("/orders/find")
def find_orders():
    """Email the link of the paid order with this reference to the address it was placed with, if the
    email given is that address. The answer is the same whatever was found: it shows nothing."""
    data = request_body()
    email, reference = data.get("email"), data.get("reference")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise invalid("email", "The email the order was placed with.")
    if not isinstance(reference, str) or not 4 <= len(reference.strip()) <= 40:
        raise invalid("reference", "The order's reference, as in its email: SF- and eight letters and digits.")
    address = client_address()
    wait = wait_in_database(FIND_SCOPE, address, FINDS_PER_HOUR, 3600)
    if wait:
        raise rate_limited(wait)
    record_in_database(FIND_SCOPE, address, 3600)
    with reading() as conn:
        order_ids = paid_order_ids_of_buyer(conn, buyer_email(email))
    for order_id in order_ids:
        if links.matches(order_id, reference):
            send_links_later(order_id)
    return render_template("orders/find.html", asked=True), 202


@bp.get("/orders/<order>")
def order_page(order: str):
    order_id = _order_id(order)
    key = request.args.get("key")
    if key is not None:  # the order's link from its email: any browser
        found = None
        if links.opens(order_id, key):
            with reading() as conn:
                found = order_of(conn, order_id)
        if found is None:
            raise not_found("No such order, or its link is not whole: copy all of it from the email.")
        return render_template("orders/order.html", order_id=order_id, order=found)
    if not wants_fragment():
        return render_template("orders/order.html", order_id=order_id)
    with reading() as conn:
        found = order_of(conn, order_id, requesting_owner())
    if found is None:
        raise not_found("No such order.")
    return render_template("orders/_order.html", order=found)
