"""A payment message's seal: proof that the shop's own webhook made it.

The webhook checks Stripe's signature, then hands the event on as a message (Kafka, then
an RQ job). Whoever can write to Kafka or Redis could hand on a message of their own, a
"payment" Stripe never took; so the webhook seals each message with an HMAC-SHA256 under
a key derived from SECRET_KEY, which the web side and the worker share and neither
broker sees, and the job settles only messages whose seal is right. A message refused
here loses nothing real: a payment Stripe did take is still found by the shopper's
return and by reconciliation, which ask Stripe itself.
"""

import hashlib
import hmac
import json

from flask import current_app

SEAL = "seal"


def _key() -> bytes:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), b"storefront payment message seal",
                    hashlib.sha256).digest()


def _digest(message: dict) -> str:
    body = json.dumps({k: v for k, v in message.items() if k != SEAL}, sort_keys=True, separators=(",", ":"))
    return hmac.new(_key(), body.encode(), hashlib.sha256).hexdigest()


def sealed(message: dict) -> dict:
    """The message with its seal."""
    return {**message, SEAL: _digest(message)}


def is_sealed(message) -> bool:
    """Whether the shop's own webhook made this message, unchanged since."""
    seal = message.get(SEAL) if isinstance(message, dict) else None
    return isinstance(seal, str) and hmac.compare_digest(seal, _digest(message))
