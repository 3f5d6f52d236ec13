"""Paying, for any payable (a hold, a checkout: payments/payables.py), one way: the payment form's
session, the demo gateway's Pay, the delivery details sent before a Stripe payment is confirmed,
and the return from Stripe. The routes of each kind are thin edges over the same steps."""

from urllib.parse import urlsplit

from flask import current_app, jsonify, render_template, request, url_for

from storefront.database import reading
from storefront.errors import ApiError, not_found
from storefront.htmx import retarget, wants_fragment
from storefront.orders.delivery import Delivery, InvalidDelivery, parse_delivery
from storefront.owners import requesting_owner
from storefront.params import request_body
from storefront.payments.gateway import PaymentSession, gateway
from storefront.payments.intents import DeliveryPastBuyerLimit, attach_delivery, open_payment
from storefront.payments.payables import Payable, payable
from storefront.payments.settlement import settle_if_succeeded, settle_paid_form, settle_returned
from storefront.shop.refusals import refusal

NAMES = {"hold": "reservation", "checkout": "checkout"}  # as a 404 names them


def demo_gateway():
    """The demo gateway; a 404 while Stripe is configured."""
    demo = gateway()
    if not demo.demo:
        raise not_found("The demo gateway is off while Stripe is configured.")
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


def give_delivery(paid: Payable, delivery: Delivery) -> None:
    """Keep the details on the order; 409 buyer_limit naming the field, shown inside the form, when
    they tell a buyer who already has as many of a product as its limit per buyer allows."""
    try:
        attach_delivery(paid, delivery, shop_url())
    except DeliveryPastBuyerLimit as refused:
        error = refusal(refused)
        error.headers = retarget("find .payment-error")
        raise error from None


def owned_payable(kind: str, payable_id, owner, message: str | None = None) -> Payable:
    """The owner's payable: 404 for an unknown one and for anyone else's alike."""
    with reading() as conn:
        found = payable(conn, kind, payable_id, owner)
    if found is None:
        raise not_found(message or f"No such {NAMES[kind]}.")
    return found


def payable_now(kind: str, payable_id, owner) -> Payable:
    """The owner's payable while it can still be paid: 404 for anyone else's, 409 once nothing of it is held."""
    found = owned_payable(kind, payable_id, owner)
    if not found.is_live():
        raise ApiError(409, "not_pending", f"This {kind} can no longer be paid.")
    return found


def again(paid: Payable) -> Payable:
    """The payable read again (it names its intent now, or it was paid)."""
    with reading() as conn:
        return payable(conn, paid.kind.name, paid.id)


def payment_form(paid: Payable, confirming: bool) -> tuple[Payable, PaymentSession | None, bool]:
    """What the payment form shows: (the payable, its payment session or None, confirming).

    The form asks Stripe for the intent once per render (its client secret), with no transaction
    open; an intent found paid already (a reload after paying, before the webhook) is settled on the
    spot and the form says it is confirming. "Confirming" renders ask Stripe nothing: they poll the
    shop until the payment settles."""
    session = open_payment(paid) if paid.is_live() and not confirming else None
    if session is not None and session.already_paid:
        settle_paid_form(again(paid), session)
        return again(paid), None, True
    return paid, session, confirming


def settle_on_return(kind: str, payable_id) -> None:
    """Stripe's return_url (or the in-place form, once confirmed) names the payable's PaymentIntent:
    ask Stripe about it and settle it before answering, whoever's page this is."""
    named_intent = request.args.get("payment_intent")
    if not named_intent:
        return
    with reading() as conn:
        found = payable(conn, kind, payable_id)
    if found is not None:
        settle_returned(found, named_intent)


NOUNS = {"hold": "hold", "checkout": "checkout"}  # as a page titles them


def payable_page(kind: str, payable_id, fragment, missing: str | None = None):
    """A payable's page, also Stripe's return_url, the same for every kind: the payment Stripe names
    settled first; then a shell the browser fills with the payable's fragment (``fragment(payable,
    confirming=, payment_failed=)``), asked for with its visitor id. A fragment asked for when the
    countdown reached 0:00 a moment before the server's clock did is 204: nothing to swap, and the
    payment form under the shopper's hands stays as it is."""
    settle_on_return(kind, payable_id)
    failed = request.args.get("redirect_status") == "failed"
    if not wants_fragment():
        fragment_url = url_for(request.endpoint, **request.view_args, redirect_status="failed" if failed else None)
        return render_template("shop/paying.html", kind=kind, noun=NOUNS[kind], fragment_url=fragment_url)
    found = owned_payable(kind, payable_id, requesting_owner(), missing)
    if request.args.get("lapsed") == "1" and found.is_live():
        return "", 204
    return fragment(found, confirming=request.args.get("confirming") == "1", payment_failed=failed)


def pay_with_demo(kind: str, payable_id) -> Payable:
    """The demo gateway's Pay, for any payable: its delivery details kept, its intent opened and paid,
    then settled as a shopper's return from Stripe is, before the page answers. Returns it read again."""
    demo = demo_gateway()
    paid = payable_now(kind, payable_id, requesting_owner())
    delivery = delivery_details(request.form)
    session = open_payment(paid)
    paid = again(paid)  # it names its intent now
    give_delivery(paid, delivery)
    settle_if_succeeded(demo.pay(session.intent_id, paid.amount, paid.currency, paid.metadata()), "return")
    return again(paid)


def take_delivery(kind: str, payable_id):
    """The payment form's delivery details, sent just before the payment is confirmed."""
    give_delivery(payable_now(kind, payable_id, requesting_owner()), delivery_details(request_body()))
    return jsonify({"saved": True})
