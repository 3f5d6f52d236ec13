"""Stripe in the browser tests: Stripe.js's test double at Stripe's URLs, and its API calls
handed to localstripe.

Playwright answers, for one browser context:

- ``https://js.stripe.com/v3/`` with tests/stripe_js/stripe-v3.js (the double of Stripe.js)
  and ``https://[b.]js.stripe.com/v3/elements-inner.html`` with the frame its elements live in;
- ``https://maps.googleapis.com/...`` (the Address Element's autocomplete) with nothing much;
- ``https://hooks.stripe.com/3d_secure_2/authenticate`` with a bank's challenge page;
- ``https://api.stripe.com/v1/...`` by calling localstripe, the stateful Stripe stand-in the
  shop itself talks to. Stripe accepts a publishable key plus the intent's client secret for
  the calls Stripe.js makes; localstripe only takes a secret key for most of them, so this
  adapter checks the publishable key and the client secret as Stripe would, then makes the
  same change on localstripe with the secret key (create the payment method; attach it and
  confirm the intent, which localstripe does in two calls where Stripe takes one).

Everything else (the shop, its Content-Security-Policy, its JavaScript, Chromium) is real.
"""

import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests

FILES = Path(__file__).resolve().parent / "stripe_js"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type"}


class StripeDouble:
    def __init__(self, localstripe_url: str, secret_key: str, publishable_key: str):
        self.api = localstripe_url
        self.auth = {"Authorization": f"Bearer {secret_key}"}
        self.publishable_key = publishable_key
        self.calls: list[str] = []  # "POST /v1/payment_methods", ... as the browser made them

    def install(self, context) -> None:
        context.route(re.compile(r"^https://([a-z0-9-]+\.)?js\.stripe\.com/.*"), self._script)
        context.route("https://maps.googleapis.com/**", self._maps)
        context.route("https://hooks.stripe.com/**", self._challenge)
        context.route("https://api.stripe.com/**", self._api_call)

    # Stripe.js and its pages

    def _script(self, route) -> None:
        path = urlsplit(route.request.url).path
        if path in ("/v3", "/v3/"):
            route.fulfill(status=200, content_type="text/javascript", body=(FILES / "stripe-v3.js").read_text())
        elif path == "/v3/elements-inner.html":
            route.fulfill(status=200, content_type="text/html", body=(FILES / "elements-inner.html").read_text())
        else:
            route.fulfill(status=404, body="")

    def _maps(self, route) -> None:
        if urlsplit(route.request.url).path.endswith("/js"):
            route.fulfill(status=200, content_type="text/javascript", body="window.google = {maps: {places: {}}};")
        else:
            route.fulfill(status=200, content_type="application/json", headers=CORS, body='{"predictions": []}')

    def _challenge(self, route) -> None:
        route.fulfill(status=200, content_type="text/html", body=(FILES / "challenge.html").read_text())

    # api.stripe.com, as Stripe.js calls it

    def _api_call(self, route) -> None:
        request = route.request
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=CORS)
            return
        path = urlsplit(request.url).path
        query = dict(parse_qsl(urlsplit(request.url).query))
        body = dict(parse_qsl(request.post_data or ""))
        self.calls.append(f"{request.method} {path}")
        if body.pop("key", None) != self.publishable_key:
            self._answer(route, 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
            return
        if path == "/v1/payment_methods":
            status, answer = self._localstripe("POST", path, body)
        elif match := re.fullmatch(r"/v1/payment_intents/(pi_\w+)/confirm", path):
            status, answer = self._confirm(match.group(1), body)
        elif re.fullmatch(r"/v1/payment_intents/pi_\w+/_authenticate", path):
            status, answer = self._localstripe("POST", f"{path}?success={query.get('success', 'false')}", body)
        else:
            status, answer = 404, {"error": {"type": "invalid_request_error", "message": f"No such route {path}"}}
        self._answer(route, status, answer)

    def _confirm(self, intent_id: str, body: dict) -> tuple[int, dict]:
        status, intent = self._localstripe("GET", f"/v1/payment_intents/{intent_id}", None)
        if status != 200 or intent.get("client_secret") != body.get("client_secret"):
            return 400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                   "message": "The client_secret provided does not match this PaymentIntent."}}
        # localstripe declines a card (4000000000000002, ...) when it is attached to a customer
        # and takes any card in a confirm: attach first, so a declined card leaves the intent
        # as Stripe does (requires_payment_method, another card welcome).
        status, customer = self._localstripe("POST", "/v1/customers", {})
        if status == 200:
            status, customer = self._localstripe("POST", f"/v1/payment_methods/{body['payment_method']}/attach",
                                                 {"customer": customer["id"]})
        if status != 200:
            return status, customer
        status, attached = self._localstripe("POST", f"/v1/payment_intents/{intent_id}",
                                             {"payment_method": body["payment_method"]})
        if status != 200:
            return status, attached
        return self._localstripe("POST", f"/v1/payment_intents/{intent_id}/confirm", {})

    def _localstripe(self, method: str, path: str, data: dict | None) -> tuple[int, dict]:
        response = requests.request(method, f"{self.api}{path}", data=data, headers=self.auth, timeout=10)
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": {"type": "api_error", "message": response.text[:200]}}
        if response.status_code == 402:  # localstripe declines when the card is attached; Stripe, on confirm
            answer.setdefault("error", {}).setdefault("code", "card_declined")
            answer["error"]["type"] = "card_error"
        return response.status_code, answer

    @staticmethod
    def _answer(route, status: int, answer: dict) -> None:
        route.fulfill(status=status, content_type="application/json", headers=CORS, body=json.dumps(answer))
