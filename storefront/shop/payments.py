"""The payment form's routes for a single hold: the demo gateway's Pay button and the delivery
details sent before a Stripe payment is confirmed (a checkout's are in ``carts.py``)."""

from urllib.parse import urlsplit

from flask import current_app, jsonify, request

from storefront.errors import ApiError
from storefront.htmx import retarget
from storefront.inventory.holds import status_of
from storefront.inventory.models import HoldStatus
from storefront.orders.delivery import Delivery, InvalidDelivery, parse_delivery
from storefront.owners import requesting_owner
from storefront.params import request_body, reservation_id
from storefront.payments.gateway import gateway, intent_metadata
from storefront.payments.intents import DeliveryPastBuyerLimit, attach_delivery, start_payment
from storefront.payments.settlement import settle_if_succeeded
from storefront.shop import bp
from storefront.shop.holds import hold_fragment, owned_hold


def demo_gateway():
    """The demo gateway; a 404 while Stripe is configured."""
    demo = gateway()
    if not demo.demo:
        raise ApiError(404, "not_found", "The demo gateway is off while Stripe is configured.")
    return demo


def delivery_details(data) -> Delivery:
    """The delivery details a payment form sent; a 400 naming the field, shown inside that form."""
    try:
        return parse_delivery(data)
    except InvalidDelivery as invalid:
        error = ApiError(400, "invalid_request", invalid.message, field=invalid.field)
        error.headers = retarget("find .payment-error")
        raise error from None


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def shop_url() -> str | None:
    """The shop's address for the order's link in its emails: this request's, when its host is one the
    shop answers for (TRUSTED_HOSTS; a request with another Host is refused), or a loopback one (a
    shop on this machine). Otherwise none: a link built from a Host header anyone can send would let
    a buyer have the shop email someone a link to another site."""
    if current_app.config["STOREFRONT"].trusted_hosts or urlsplit(request.url_root).hostname in LOOPBACK_HOSTS:
        return request.url_root
    return None


def give_delivery(kind: str, subject, delivery: Delivery) -> None:
    """Keep the details on the order; 409 buyer_limit naming the field, shown inside the form, when
    they tell a buyer who already has as many of a product as its limit per buyer allows."""
    try:
        attach_delivery(kind, subject, delivery, shop_url())
    except DeliveryPastBuyerLimit as refused:
        past = refused.past
        error = ApiError(409, "buyer_limit",
                         f"One buyer may have {past.limit} of this product, and this {past.field} has {past.held} "
                         "already: nothing was charged.", field=past.field, limit=past.limit, held=past.held,
                         productId=past.family)
        error.headers = retarget("find .payment-error")
        raise error from None


def pay_with_demo(demo, intent_id: str, amount: int, currency: str, metadata: dict) -> None:
    """Pay, then settle as a shopper's return from Stripe does: before the page answers."""
    settle_if_succeeded(demo.pay(intent_id, amount, currency, metadata), "return")


def payable_hold(hold_id, owner):
    """The owner's hold, while it can still be paid: 404 for anyone else's, 409 once it is not PENDING."""
    hold = owned_hold(hold_id, owner)
    if status_of(hold) != HoldStatus.PENDING:
        raise ApiError(409, "not_pending", "This hold can no longer be paid.")
    return hold


@bp.post("/reservations/<reservation>/demo-payment")
def demo_payment(reservation: str):
    """The demo gateway's Pay button for a hold."""
    demo = demo_gateway()
    hold_id, owner = reservation_id(reservation), requesting_owner()
    hold = payable_hold(hold_id, owner)
    delivery = delivery_details(request.form)
    session = start_payment(hold)
    hold = owned_hold(hold_id, owner)  # read again: it names its intent now
    give_delivery("hold", hold, delivery)
    pay_with_demo(demo, session.intent_id, hold.amount, hold.currency, intent_metadata(hold))
    hold = owned_hold(hold_id, owner)
    # Paid from the hold's own page: no product page around it to bring its stock to.
    return hold_fragment(hold, confirming=True, on_hold_page=request.args.get("on_hold_page") == "1")


@bp.post("/api/reservations/<reservation>/delivery")
def hold_delivery(reservation: str):
    """The payment form's delivery details for a hold, sent just before the payment is confirmed."""
    hold = payable_hold(reservation_id(reservation), requesting_owner())
    give_delivery("hold", hold, delivery_details(request_body()))
    return jsonify({"saved": True})
