"""The payment gateway: every call to Stripe goes through here, or to the demo stand-in.

With ``STRIPE_SECRET_KEY`` set, :class:`StripeGateway` talks to Stripe (or to
``STRIPE_API_BASE``, a Stripe-compatible server) with explicit timeouts and
idempotency keys derived from the hold, so a retry never charges, cancels or
refunds twice. Without it, :class:`DemoGateway` plays Stripe's part in-process
for newcomers: clearly labelled, no network, no money.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

import stripe
from flask import Flask, current_app

from storefront.orders.book import DEMO_INTENT_PREFIX

log = logging.getLogger(__name__)

STRIPE_TIMEOUT_SECONDS = 10
STRIPE_NETWORK_RETRIES = 2


class PaymentError(Exception):
    """Stripe could not do what we asked (network, or Stripe said no). Safe to retry."""


class PaymentRefused(PaymentError):
    """Stripe answered, and said no: nothing was done under that idempotency key."""


@dataclass(frozen=True)
class PaymentSession:
    """What the payment form needs: the PaymentIntent and its client secret (for its visitor only)."""

    intent_id: str
    client_secret: str
    status: str = "requires_payment_method"  # as Stripe said when asked

    @property
    def already_paid(self) -> bool:
        """Paid (or being paid) already: the form is not to be offered again."""
        return self.status in ("succeeded", "processing")


class StripeGateway:
    demo = False

    def __init__(self, secret_key: str, publishable_key: str | None, webhook_secret: str, api_base: str | None):
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS),
            max_network_retries=STRIPE_NETWORK_RETRIES,
        )

    def open_intent(self, *, key: str, amount: int, currency: str, metadata: dict,
                    intent_id: str | None = None, capture_method: str | None = None) -> PaymentSession:
        """A PaymentIntent created once per ``key`` (its idempotency key), then retrieved by id. With
        ``capture_method="manual"`` the card is only authorised when the shopper confirms: the money is
        taken by :meth:`capture` (a draw's winner), or released by :meth:`cancel`."""
        try:
            if intent_id:
                intent = self._client.v1.payment_intents.retrieve(intent_id)
            else:
                params = {
                    "amount": amount,
                    "currency": currency,
                    # Cards: what the Payment Element shows here, and what local
                    # Stripe stand-ins understand.
                    "payment_method_types": ["card"],
                    "metadata": metadata,
                }
                if capture_method:
                    params["capture_method"] = capture_method
                intent = self._client.v1.payment_intents.create(
                    params=params, options={"idempotency_key": f"storefront-{key}-intent"})
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None
        return PaymentSession(intent.id, intent.client_secret, intent.status)

    def set_delivery(self, intent_id: str, email: str, shipping: dict) -> None:
        """Put the shopper's delivery details on the PaymentIntent: Stripe's receipt and dashboard show them."""
        try:
            self._client.v1.payment_intents.update(
                intent_id, params={"receipt_email": email, "shipping": shipping},
                options={"idempotency_key": f"storefront-delivery-{intent_id}-{_digest(email, shipping)}"},
            )
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None

    def retrieve(self, intent_id: str) -> dict:
        """The PaymentIntent as Stripe records it now: the truth about the money."""
        try:
            return _intent_dict(self._client.v1.payment_intents.retrieve(intent_id))
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None

    def cancel(self, intent_id: str) -> str:
        """Cancel a PaymentIntent so a released hold cannot be paid; returns its status afterwards.

        ``canceled`` once it is; when Stripe refuses because it is past cancelling, the
        status it has instead (``succeeded``, ``processing``): a payment to settle, never
        one to forget. Raises PaymentError when Stripe cannot be reached.

        No key of ours: Stripe keeps the first answer to a key for 24 hours, errors
        included, so a fixed key would replay "cannot cancel while processing" after the
        intent went back to cancellable. The library gives each call its own key and reuses
        it for its own network retries; cancelling twice is harmless anyway.
        """
        try:
            intent = self._client.v1.payment_intents.cancel(intent_id)
        except stripe.InvalidRequestError as error:
            log.info("payment intent %s not cancelled: %s", intent_id, error.code or "invalid state")
            return self.retrieve(intent_id)["status"]
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None
        return intent.status

    def capture(self, intent_id: str, amount: int, key: str) -> dict:
        """Capture ``amount`` (at most what was authorised; the rest is released) of an authorised
        PaymentIntent, once per ``key``; returns the intent as Stripe records it afterwards.

        Raises PaymentRefused when Stripe answered no (declined, the authorisation expired or was
        cancelled: nothing was captured), PaymentError when the outcome is unknown (ask again, and
        read the intent before capturing again)."""
        try:
            intent = self._client.v1.payment_intents.capture(
                intent_id, params={"amount_to_capture": amount},
                options={"idempotency_key": f"storefront-capture-{key}"})
        except (stripe.InvalidRequestError, stripe.CardError) as error:
            raise PaymentRefused(_describe(error)) from None
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None
        return _intent_dict(intent)

    def card_fingerprint(self, intent: dict) -> str | None:
        """The fingerprint Stripe gives the card that pays ``intent`` (the same card, the same
        fingerprint, across customers), or None when it gives none."""
        method = intent.get("payment_method")
        if not method:
            return None
        try:
            card = (self._client.v1.payment_methods.retrieve(method).to_dict().get("card") or {})
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None
        return card.get("fingerprint")

    def refund(self, intent_id: str, amount: int, key: str) -> str:
        """Refund ``amount`` of a PaymentIntent, once per ``key``. Returns the refund id.

        Raises PaymentRefused when Stripe answered no (nothing was refunded under ``key``, and
        Stripe will give the same no to ``key`` for a day: ask again under another), and
        PaymentError when the outcome is unknown (ask again under the same ``key``).
        """
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": intent_id, "amount": amount},
                options={"idempotency_key": f"storefront-refund-{key}"},
            )
        except (stripe.InvalidRequestError, stripe.CardError) as error:
            raise PaymentRefused(_describe(error)) from None
        except stripe.StripeError as error:
            raise PaymentError(_describe(error)) from None
        return refund.id


def _intent_dict(intent) -> dict:
    """The fields of a PaymentIntent that settling it reads, as plain data."""
    data = intent.to_dict()
    return {
        "id": data["id"],
        "object": "payment_intent",
        "status": data.get("status"),
        "amount": data.get("amount"),
        "amount_received": data.get("amount_received") or 0,
        "currency": data.get("currency"),
        "metadata": dict(data.get("metadata") or {}),
        "receipt_email": data.get("receipt_email"),
        "shipping": data.get("shipping"),
        "payment_method": data["payment_method"] if isinstance(data.get("payment_method"), str)
        else (data.get("payment_method") or {}).get("id"),
    }


def _digest(*values) -> str:
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _describe(error: stripe.StripeError) -> str:
    # Class, HTTP status and code only: messages can quote the request, and with it a key.
    return f"{type(error).__name__} (status {error.http_status}, code {error.code or 'none'})"


@dataclass(frozen=True)
class DemoRefund:
    id: str
    payment_intent: str
    amount: int


class DemoGateway:
    """Stripe's part, played in-process: for trying the shop without an account (no money moves).

    PaymentIntent ids are derived from what is paid for (``pi_demo_…``, so that an order paid
    this way says so). Paying returns the succeeded PaymentIntent as Stripe would, and the shop
    settles it as it settles a shopper's return from Stripe, before the page answers. The webhook
    still takes events signed with the demo secret (``demo_webhook_secret``), as it takes Stripe's.
    """

    demo = True
    publishable_key = None

    def __init__(self, webhook_secret: str):
        self.webhook_secret = webhook_secret
        # The refunds made, by idempotency key, as Stripe keeps them (this process's only).
        self.refunds: dict[str, DemoRefund] = {}

    def open_intent(self, *, key: str, amount: int, currency: str, metadata: dict,
                    intent_id: str | None = None, capture_method: str | None = None) -> PaymentSession:
        intent_id = intent_id or f"{DEMO_INTENT_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        return PaymentSession(intent_id, f"{intent_id}_secret_demo")

    def retrieve(self, intent_id: str) -> dict:
        # A demo payment settles in the request that makes it (the pay step), so an intent
        # asked about later is one that was never paid.
        return {"id": intent_id, "object": "payment_intent", "status": "requires_payment_method",
                "amount": 0, "amount_received": 0, "currency": "usd", "metadata": {}}

    def set_delivery(self, intent_id: str, email: str, shipping: dict) -> None:
        """Nothing to tell: the order keeps the details (no receipts come from the demo)."""

    def cancel(self, intent_id: str) -> str:
        return "canceled"

    def capture(self, intent_id: str, amount: int, key: str) -> dict:
        """A demo entry's authorisation, captured (no money moves)."""
        return {"id": intent_id, "object": "payment_intent", "status": "succeeded", "amount": amount,
                "amount_received": amount, "currency": None, "metadata": {}}

    def card_fingerprint(self, intent: dict) -> str | None:
        return None

    def refund(self, intent_id: str, amount: int, key: str) -> str:
        """A refund per key, as Stripe makes one: the same key gives back the same refund."""
        if key not in self.refunds:
            self.refunds[key] = DemoRefund(f"re_demo_{secrets.token_hex(12)}", intent_id, amount)
        return self.refunds[key].id

    def pay(self, intent_id: str, amount: int, currency: str, metadata: dict) -> dict:
        """Pay the intent (no money moves): the succeeded PaymentIntent, as Stripe would return it."""
        return {"id": intent_id, "object": "payment_intent", "status": "succeeded", "amount": amount,
                "amount_received": amount, "currency": currency, "metadata": dict(metadata)}


def demo_webhook_secret(secret_key: str) -> str:
    """The demo gateway's webhook secret, derived from SECRET_KEY so it is stable and private."""
    digest = hmac.new(secret_key.encode(), b"storefront demo webhook secret", hashlib.sha256).hexdigest()
    return f"whsec_demo_{digest}"


def gateway():
    return current_app.extensions["storefront.gateway"]


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    if settings.stripe_secret_key:
        if not settings.stripe_publishable_key:
            app.logger.warning("STRIPE_PUBLISHABLE_KEY is not set: the payment form cannot load")
        chosen = StripeGateway(
            settings.stripe_secret_key,
            settings.stripe_publishable_key,
            settings.stripe_webhook_secret,
            settings.stripe_api_base,
        )
    elif settings.demo_payments:
        # The contract: the webhook always verifies against STRIPE_WEBHOOK_SECRET when it is set.
        chosen = DemoGateway(settings.stripe_webhook_secret or demo_webhook_secret(settings.secret_key))
    else:  # Config.from_env refuses this; a Config built by hand must say which gateway too
        raise SystemExit("storefront: configuration error: STRIPE_SECRET_KEY is not set and DEMO_PAYMENTS is not 1")
    app.extensions["storefront.gateway"] = chosen
    app.add_template_global(gateway, "payment_gateway")
