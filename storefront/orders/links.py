"""An order's link that works in any browser: ``/orders/<id>?key=<signature>``.

Orders belong to the browser that placed them; clear its data and they would be gone. So the
confirmation email carries a link whose key is the order id signed with SECRET_KEY (no account,
nothing stored): whoever has the email can open the order, and nobody can make a key for another
order. ``/orders/find`` sends the links again to the email an order was placed with."""

import hashlib
import uuid

from flask import current_app
from itsdangerous import Signer

from storefront.orders.book import reference_of


def _signer() -> Signer:
    return Signer(current_app.config["SECRET_KEY"], salt="storefront.order-link", digest_method=hashlib.sha256)


def order_key(order_id: uuid.UUID) -> str:
    return _signer().get_signature(str(order_id)).decode()


def opens(order_id: uuid.UUID, key: str | None) -> bool:
    """Whether ``key`` is this order's key."""
    return bool(key) and _signer().verify_signature(str(order_id).encode(), key.encode())


def order_link(shop_url: str | None, order_id: uuid.UUID) -> str | None:
    """The order's page, with its key, at the address the shopper reached the shop by; None when unknown."""
    if not shop_url:
        return None
    return f"{shop_url.rstrip('/')}/orders/{order_id}?key={order_key(order_id)}"


def matches(order_id: uuid.UUID, reference: str) -> bool:
    """Whether a reference a shopper typed (any case, with or without its SF- and spaces) is this order's."""
    typed = "".join(reference.split()).upper().removeprefix("SF-")
    return typed == reference_of(order_id).removeprefix("SF-")
