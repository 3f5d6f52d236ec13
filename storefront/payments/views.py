"""Stripe's way in: the webhook (the shopper's payment routes are the shop's, ``storefront/shop``)."""

from flask import Blueprint, jsonify, request

from storefront.errors import RETRY_AFTER_SECONDS, ApiError
from storefront.payments import webhook

bp = Blueprint("payments", __name__)


@bp.post("/api/webhooks/stripe")
def stripe_webhook():
    try:
        receipt = webhook.receive(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except webhook.InvalidEvent as invalid:
        raise ApiError(400, "invalid_signature", f"Webhook refused: {invalid}") from None
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if receipt.status == 503 else {}
    return jsonify(receipt.body), receipt.status, headers
