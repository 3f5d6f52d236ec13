"""The JSON API described in OpenAPI 3.1, served at ``/api/openapi.json``.

Written out by hand from the contract (shared/CONTRACT.md), next to the code it
describes; tests keep it true: every API route of the app is in it, and a
schemathesis fuzz run finds no 5xx.
"""

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

VISITOR_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$"}
UUID = {"type": "string", "format": "uuid"}


def _error(*extra_properties: str) -> dict:
    properties = {"error": {"type": "string"}, "message": {"type": "string"}}
    properties.update({name: {} for name in extra_properties})
    return {"type": "object", "required": ["error"], "properties": properties}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


HOLD = {
    "type": "object",
    "required": ["reservationId", "status", "productId", "userId", "quantity", "amount", "currency", "expiresAt",
                 "paymentIntentId"],
    "properties": {
        "reservationId": UUID,
        "status": {"enum": ["PENDING", "COMPLETED", "EXPIRED", "CANCELLED", "REFUNDED"]},
        "productId": {"type": "integer"},
        "userId": VISITOR_ID,
        "quantity": {"type": "integer", "minimum": 1},
        "amount": {"type": "integer", "minimum": 0, "description": "minor units of currency"},
        "currency": {"type": "string"},
        "expiresAt": {"type": "string", "format": "date-time"},
        "paymentIntentId": {"type": ["string", "null"]},
    },
}
CART = {
    "type": "object", "required": ["items", "amount", "currency"],
    "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "productId": {"type": "integer"}, "quantity": {"type": "integer"}, "available": {"type": "integer"},
            "amount": {"type": "integer"}}}},
        "amount": {"type": "integer"}, "currency": {"type": "string"},
    },
}
DELIVERY = {
    "type": "object", "required": ["email", "name", "line1", "city", "country"],
    "properties": {"userId": {"type": "string"}, "email": {"type": "string", "format": "email"},
                   "name": {"type": "string"}, "line1": {"type": "string"}, "line2": {"type": "string"},
                   "city": {"type": "string"}, "state": {"type": "string"}, "postalCode": {"type": "string"},
                   "country": {"type": "string", "description": "ISO 3166 two-letter code"}},
}

VISITOR_PARAMETERS = [
    {"name": "X-Visitor-Id", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "userId", "in": "query", "required": False, "schema": {"type": "string"}},
]
ERRORS = {
    "400": {"description": "a missing or malformed field", "content": _json(_error("field"))},
    "404": {"description": "unknown, or another visitor's", "content": _json(_error())},
}


def document() -> dict:
    reservation_path = {"name": "reservationId", "in": "path", "required": True, "schema": {"type": "string"}}
    checkout_path = {"name": "checkoutId", "in": "path", "required": True, "schema": {"type": "string"}}

    def delivery(what: str, path_parameter: dict) -> dict:
        return {"post": {
            "summary": f"Delivery details for a {what}'s order, given in its payment form before paying",
            "parameters": [path_parameter, *VISITOR_PARAMETERS],
            "requestBody": {"required": True, "content": _json(DELIVERY)},
            "responses": {"200": {"description": "kept on the order (and on the PaymentIntent)",
                                  "content": _json({"type": "object"})},
                          "409": {"description": f"the {what} can no longer be paid", "content": _json(_error())},
                          **ERRORS},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Storefront API", "version": "1", "description": "Limited stock, never oversold."},
        "paths": {
            "/api/inventory/check/{productId}": {"get": {
                "summary": "Live stock of a product (with HX-Request: the Buy button fragment)",
                "parameters": [{"name": "productId", "in": "path", "required": True, "schema": {"type": "integer"}},
                               {"name": "If-None-Match", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {
                    "304": {"description": "unchanged since the ETag given in If-None-Match"},
                    "200": {"description": "stock (with an ETag of the product's total and available units)",
                            "content": _json({
                        "type": "object", "required": ["productId", "available", "total", "inStock"],
                        "properties": {"productId": {"type": "integer"}, "available": {"type": "integer"},
                                       "total": {"type": "integer"}, "inStock": {"type": "boolean"}}})},
                    "404": ERRORS["404"],
                },
            }},
            "/api/reservations": {"post": {
                "summary": "Hold units of a product for a visitor",
                "requestBody": {"required": True, "content": {
                    **_json({"type": "object", "required": ["productId", "userId"], "properties": {
                        "productId": {"type": "integer"}, "userId": VISITOR_ID,
                        "quantity": {"type": "integer", "minimum": 1, "default": 1}}}),
                    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                        "productId": {"type": "string"}, "userId": {"type": "string"},
                        "quantity": {"type": "string"}}}},
                }},
                "responses": {
                    "201": {"description": "a new hold", "content": _json(HOLD)},
                    "200": {"description": "this visitor's live hold on the product", "content": _json(HOLD)},
                    "400": ERRORS["400"],
                    "404": ERRORS["404"],
                    "409": {"description": "out_of_stock (with available) or hold_limit",
                            "content": _json(_error("available", "limit", "held"))},
                    "413": {"description": "body too large", "content": _json(_error())},
                    "429": {"description": "too many holds from this address (Retry-After)",
                            "content": _json(_error())},
                },
            }},
            "/api/reservations/{reservationId}": {
                "get": {"summary": "A visitor's hold", "parameters": [reservation_path, *VISITOR_PARAMETERS],
                        "responses": {"200": {"description": "the hold", "content": _json(HOLD)}, **ERRORS}},
                "delete": {"summary": "Release a PENDING hold", "parameters": [reservation_path, *VISITOR_PARAMETERS],
                           "responses": {"200": {"description": "now CANCELLED", "content": _json(HOLD)},
                                         "409": {"description": "not PENDING", "content": _json(_error("status"))},
                                         **ERRORS}},
            },
            "/api/reservations/{reservationId}/delivery": delivery("hold", reservation_path),
            "/api/checkouts/{checkoutId}/delivery": delivery("checkout", checkout_path),
            "/api/webhooks/stripe": {"post": {
                "summary": "Stripe's webhook (Stripe-Signature over the raw body, 300 s tolerance)",
                "parameters": [{"name": "Stripe-Signature", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": _json({"type": "object"})},
                "responses": {
                    "200": {"description": "received", "content": _json({"type": "object"})},
                    "400": {"description": "missing, wrong or stale signature", "content": _json(_error())},
                    "503": {"description": "not durably handed over: deliver again", "content": _json(_error())},
                },
            }},
            "/api/cart": {"get": {
                "summary": "The visitor's cart", "parameters": VISITOR_PARAMETERS,
                "responses": {"200": {"description": "the cart", "content": _json(CART)}, "400": ERRORS["400"]},
            }},
            "/api/cart/items": {"post": {
                "summary": "Set a line of the cart (productId, quantity 1 to MAX_HOLD_QUANTITY)",
                "parameters": VISITOR_PARAMETERS[:1],
                "requestBody": {"required": True, "content": _json({
                    "type": "object", "required": ["productId"], "properties": {
                        "productId": {"type": "integer"}, "quantity": {"type": "integer", "minimum": 1},
                        "userId": VISITOR_ID}})},
                "responses": {"200": {"description": "the cart", "content": _json(CART)},
                              "409": {"description": "cart_full", "content": _json(_error())}, **ERRORS},
            }},
            "/api/cart/items/{productId}": {"delete": {
                "summary": "Remove a line of the cart",
                "parameters": [{"name": "productId", "in": "path", "required": True, "schema": {"type": "integer"}},
                               *VISITOR_PARAMETERS],
                "responses": {"200": {"description": "the cart", "content": _json(CART)}, **ERRORS},
            }},
            "/api/checkouts": {"post": {
                "summary": "Hold every line of the cart, all or none",
                "parameters": VISITOR_PARAMETERS[:1],
                "requestBody": {"required": False, "content": _json({"type": "object", "properties": {
                    "userId": VISITOR_ID}})},
                "responses": {
                    "201": {"description": "the checkout", "content": _json({
                        "type": "object", "required": ["checkoutId", "reservations", "amount", "currency", "expiresAt"],
                        "properties": {"checkoutId": UUID, "reservations": {"type": "array", "items": HOLD},
                                       "amount": {"type": "integer"}, "currency": {"type": "string"},
                                       "expiresAt": {"type": "string", "format": "date-time"}}})},
                    "400": {"description": "empty_cart or a malformed visitor id", "content": _json(_error("field"))},
                    "409": {"description": "out_of_stock (items: productId, available) or hold_limit",
                            "content": _json(_error("items", "limit", "held"))},
                    "429": {"description": "too many holds from this address", "content": _json(_error())},
                },
            }},
            "/api/orders": {"get": {
                "summary": "The visitor's holds and purchases, newest first", "parameters": VISITOR_PARAMETERS,
                "responses": {"200": {"description": "orders", "content": _json({
                    "type": "object", "properties": {"orders": {"type": "array", "items": HOLD}}})},
                    "400": ERRORS["400"]},
            }},
            "/api/openapi.json": {"get": {"summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "The process is up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Database, Redis and Kafka answer",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "names what is down"}}}},
        },
    }


@bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(document())
