"""The cart (one per visitor), its checkout, and the visitor's orders."""

from flask import current_app, jsonify, render_template, request
from sqlalchemy import select

from storefront.cart import checkout as carts
from storefront.catalog.models import products
from storefront.clock import isoformat_z, utcnow
from storefront.database import reading
from storefront.errors import not_found
from storefront.extensions import db
from storefront.htmx import trigger, wants_fragment
from storefront.inventory.grants import DrawOnly, HoldLimits
from storefront.inventory.holds import hold_json
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import on_sale, stock_levels
from storefront.owners import Owner, client_address, owner_of, requesting_owner
from storefront.params import integer_field, request_body, reservation_id
from storefront.payments.gateway import gateway
from storefront.payments.payables import Payable, payable
from storefront.payments.reconcile import settle_released_intent
from storefront.ratelimit import holds_rate_limit
from storefront.shop import bp
from storefront.shop.payments import pay_with_demo, payable_page, payment_form, take_delivery
from storefront.shop.refusals import REFUSED, refusal


def _settings():
    return current_app.config["STOREFRONT"]


def _body_owner(data) -> Owner:
    """A write names its visitor in the body (userId) or, like a read, in X-Visitor-Id."""
    return owner_of(data.get("userId") or request.headers.get("X-Visitor-Id"))


def cart_json(conn, owner: Owner) -> dict:
    lines = carts.cart_of(conn, owner)
    ids = [line.product_id for line in lines]
    levels = stock_levels(conn, ids)
    prices = {row.id: row for row in conn.execute(
        select(products.c.id, products.c.price, products.c.currency, products.c.name).where(products.c.id.in_(ids)))}
    items = [{"productId": line.product_id, "quantity": line.quantity, "available": levels[line.product_id].available,
              "amount": prices[line.product_id].price * line.quantity, "name": prices[line.product_id].name}
             for line in lines]
    currency = prices[ids[0]].currency if ids else "usd"
    return {"items": items, "amount": sum(item["amount"] for item in items), "currency": currency}


def _cart_answer(conn, owner: Owner, change: str | None = None):
    cart = cart_json(conn, owner)
    if wants_fragment():
        return render_template("shop/_cart.html", cart=cart, change=change)
    return jsonify({**cart, "items": [{k: v for k, v in item.items() if k != "name"} for item in cart["items"]]})


@bp.get("/api/cart")
def show_cart():
    owner = requesting_owner()
    with reading() as conn:
        return _cart_answer(conn, owner)


@bp.post("/api/cart/items")
@holds_rate_limit
def set_cart_line():
    data = request_body()
    product_id = integer_field(data, "productId", low=1, high=2**31 - 1)
    quantity = integer_field(data, "quantity", low=1, high=_settings().max_hold_quantity, default=1)
    owner = _body_owner(data)
    with db.engine.begin() as conn:
        terms = on_sale(conn, product_id)
        if not terms:
            raise not_found("No such product.")
        if terms.draw:
            raise refusal(DrawOnly([product_id]))
        try:
            change = carts.set_line(conn, owner, product_id, quantity)
        except carts.CartFull as full:
            raise refusal(full) from None
    with reading() as conn:
        return _cart_answer(conn, owner, change)


@bp.delete("/api/cart/items/<product_id:product_id>")
@holds_rate_limit
def remove_cart_line(product_id: int):
    owner = owner_of(request.headers.get("X-Visitor-Id") or request.args.get("userId")
                     or request_body().get("userId"))
    with db.engine.begin() as conn:
        carts.remove_line(conn, owner, product_id)
    with reading() as conn:
        return _cart_answer(conn, owner)


def checkout_json(placed_checkout, lines) -> dict:
    return {
        "checkoutId": str(placed_checkout.id),
        "reservations": [hold_json(line) for line in lines],
        "amount": placed_checkout.amount,
        "currency": placed_checkout.currency,
        "expiresAt": isoformat_z(placed_checkout.expires_at),
    }


@bp.post("/api/checkouts")
@holds_rate_limit
def create_checkout():
    data = request_body() if request.content_length else {}
    owner = _body_owner(data)
    settings = _settings()
    try:
        with db.engine.begin() as conn:
            placed = carts.place_checkout(conn, owner, client_address(), settings.hold_ttl_seconds,
                                          HoldLimits.of(settings))
    except REFUSED as refused:
        raise refusal(refused, lines=True) from None
    for _, intent_id in placed.superseded_intents:
        settle_released_intent(intent_id)  # released by the shop: settle it with Stripe now
    if wants_fragment():
        with reading() as conn:
            placed_payable = payable(conn, "checkout", placed.checkout.id)
        return checkout_fragment(placed_payable, 201)
    return jsonify(checkout_json(placed.checkout, placed.holds)), 201


def checkout_fragment(paid: Payable, status: int = 200, *, confirming: bool = False, payment_failed: bool = False):
    """The checkout with its lines, and its payment form while some can be paid (shop/payments.py:
    payment_form, as a hold's)."""
    now = utcnow()
    paid, payment, confirming = payment_form(paid, confirming)
    checkout, lines, live = paid.row, paid.lines, paid.is_live(now)
    with reading() as conn:
        rows = conn.execute(select(products.c.id, products.c.name, products.c.per_buyer)
                            .where(products.c.id.in_([line.product_id for line in lines]))).all()
    names = {row.id: row.name for row in rows}
    buyer_limits = [(row.name, row.per_buyer) for row in rows if row.per_buyer is not None]
    body = render_template("shop/_checkout.html", checkout=checkout, lines=lines, names=names, now=now,
                           live=live, payment=payment, gateway=gateway(), confirming=confirming and live,
                           payment_failed=payment_failed, buyer_limits=buyer_limits)
    # Paid: its lines left the cart, and the cart on the page shows it at once.
    settled = any(line.status in (HoldStatus.COMPLETED, HoldStatus.REFUNDED) for line in lines)
    return body, status, trigger("cart-changed") if settled else {}


@bp.get("/checkouts/<checkout>")
def checkout_page(checkout: str):
    return payable_page("checkout", reservation_id(checkout), checkout_fragment)


@bp.post("/checkouts/<checkout>/demo-payment")
def checkout_demo_payment(checkout: str):
    """The demo gateway's Pay button for a checkout."""
    return checkout_fragment(pay_with_demo("checkout", reservation_id(checkout)), confirming=True)


@bp.post("/api/checkouts/<checkout>/delivery")
def checkout_delivery(checkout: str):
    """The payment form's delivery details for a checkout, sent just before the payment is confirmed."""
    return take_delivery("checkout", reservation_id(checkout))


@bp.get("/cart")
def cart_page():
    if not wants_fragment():
        return render_template("shop/cart.html")
    owner = requesting_owner()
    with reading() as conn:
        return render_template("shop/_cart.html", cart=cart_json(conn, owner))


