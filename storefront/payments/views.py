from flask import Blueprint, jsonify, request
from sqlalchemy import select

from storefront.errors import ApiError
from storefront.extensions import db
from storefront.inventory.holds import find_hold, status_of
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import holds
from storefront.inventory.views import hold_fragment
from storefront.params import requesting_visitor, reservation_id
from storefront.payments import webhook
from storefront.payments.gateway import gateway, intent_metadata, sign
from storefront.payments.intents import start_payment

bp = Blueprint("payments", __name__)


@bp.post("/api/webhooks/stripe")
def stripe_webhook():
    try:
        receipt = webhook.receive(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except webhook.InvalidEvent as invalid:
        raise ApiError(400, "invalid_signature", f"Webhook refused: {invalid}") from None
    return jsonify(receipt.body), receipt.status


@bp.post("/reservations/<reservation>/demo-payment")
def demo_payment(reservation: str):
    """The demo gateway's Pay button: Stripe's succeeded event, signed and sent to our own webhook."""
    demo = gateway()
    if not demo.demo:
        raise ApiError(404, "not_found", "The demo gateway is off while Stripe is configured.")
    hold_id, user_id = reservation_id(reservation), requesting_visitor()
    with db.engine.connect() as conn:
        hold = find_hold(conn, hold_id, user_id)
        if hold is None:
            raise ApiError(404, "not_found", "No such reservation.")
        if status_of(hold) != HoldStatus.PENDING:
            raise ApiError(409, "not_pending", "This hold can no longer be paid.")
        session = start_payment(conn, hold)
        payload = demo.succeeded_event(session.intent_id, hold.amount, hold.currency, intent_metadata(hold))
    receipt = webhook.receive(payload, sign(payload, demo.webhook_secret))
    if receipt.status != 200:
        raise ApiError(503, "unavailable", "The payment could not be recorded; try again.")
    with db.engine.connect() as conn:
        hold = conn.execute(select(holds).where(holds.c.id == hold_id)).first()
        return hold_fragment(conn, hold, confirming=True)
