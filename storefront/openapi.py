"""The JSON API described in OpenAPI 3.1, served at ``/api/openapi.json``.

Written out by hand from the contract (shared/CONTRACT.md), next to the code it
describes; tests keep it true: every API route of the app is in it, and a
schemathesis fuzz run finds no 5xx.
"""

from flask import Blueprint, current_app, jsonify, render_template

bp = Blueprint("openapi", __name__)

VISITOR_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$"}
UUID = {"type": "string", "format": "uuid"}
# A product (or option) id: a PostgreSQL integer.
PRODUCT_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
# Text that is more than spaces (the server reads "  " as absent); no control characters anywhere.
TEXT = r"\S"
PRINTABLE = r"^[^\u0000-\u001f\u007f-\u009f]*$"


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
        "amount": {"type": "integer", "minimum": 0, "description": "minor units of currency, as Stripe counts them"},
        "currency": {"type": "string"},
        "expiresAt": {"type": "string", "format": "date-time"},
        "paymentIntentId": {"type": ["string", "null"]},
    },
}
ENTRY = {
    "type": "object", "required": ["entryId", "productId", "status", "position", "joinedAt"],
    "properties": {"entryId": UUID, "productId": {"type": "integer"},
                   "status": {"enum": ["waiting", "admitted", "held", "expired", "closed"]},
                   "position": {"type": ["integer", "null"], "minimum": 1},
                   "joinedAt": {"type": "string", "format": "date-time"}},
}
PLACE = {
    "type": "object", "required": ["entryId", "status", "position", "ahead", "passExpiresAt"],
    "properties": {"entryId": UUID, "status": {"enum": ["waiting", "admitted", "held", "expired", "closed"]},
                   "position": {"type": ["integer", "null"], "minimum": 1},
                   "ahead": {"type": ["integer", "null"], "minimum": 0},
                   "passExpiresAt": {"type": ["string", "null"], "format": "date-time"}},
}
STANDING = {
    "type": "object",
    "required": ["productId", "state", "opensAt", "startsAt", "seedHash", "seed", "length", "admittedThrough",
                 "available"],
    "properties": {"productId": {"type": "integer"},
                   "state": {"enum": ["not_open", "open", "admitting", "sold_out"]},
                   "opensAt": {"type": "string", "format": "date-time"},
                   "startsAt": {"type": "string", "format": "date-time"},
                   "seedHash": {"type": ["string", "null"], "description": "hex SHA-256 of the seed"},
                   "seed": {"type": ["string", "null"], "description": "hex, revealed at the start"},
                   "length": {"type": "integer"}, "admittedThrough": {"type": "integer"},
                   "available": {"type": "integer"}, "admittedLastMinute": {"type": "integer"}},
}
DRAW_STANDING = {
    "type": "object",
    "required": ["productId", "state", "opensAt", "closesAt", "seedHash", "seed", "entries", "units"],
    "properties": {"productId": {"type": "integer"},
                   "state": {"enum": ["not_open", "open", "closed", "drawn"]},
                   "opensAt": {"type": "string", "format": "date-time"},
                   "closesAt": {"type": "string", "format": "date-time"},
                   "seedHash": {"type": ["string", "null"], "description": "hex SHA-256 of the seed, from the opening"},
                   "seed": {"type": ["string", "null"], "description": "hex, revealed once drawn"},
                   "entries": {"type": "integer"}, "units": {"type": "integer"}},
}
DRAW_ENTRY = {
    "type": "object", "required": ["entryId", "status", "rank", "productId", "wonProductId", "paymentIntentId"],
    "properties": {"entryId": UUID,
                   "status": {"enum": ["pending_payment", "entered", "won", "lost", "forfeited", "duplicate",
                                       "withdrawn"]},
                   "rank": {"type": ["integer", "null"], "minimum": 1},
                   "productId": {"type": "integer"}, "backupProductId": {"type": ["integer", "null"]},
                   "wonProductId": {"type": ["integer", "null"]},
                   "paymentIntentId": {"type": ["string", "null"]}},
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
# The one way every read, release and cart change names its visitor. (Scripts may send the
# id as ?userId= instead, and the browser's forms as userId in the body: the same rule.)
VISITOR_HEADER = {"name": "X-Visitor-Id", "in": "header", "required": True, "schema": VISITOR_ID,
                  "description": "the visitor id (or the userId query parameter in its place)"}
ERRORS = {
    "400": {"description": "a missing or malformed field", "content": _json(_error("field"))},
    "404": {"description": "unknown, or another visitor's", "content": _json(_error())},
}


def _delivery_schema() -> dict:
    """Delivery details as the server checks them (orders/delivery.py): the fields every address
    has, and city, state or postal code where the country's address format requires them."""
    from storefront.orders.delivery import countries, required_by_country

    codes = [code for code, _ in countries()]
    by_requirement: dict[tuple[str, ...], list[str]] = {}
    for code in codes:
        by_requirement.setdefault(required_by_country(code), []).append(code)
    def text(limit: int, required: bool = False) -> dict:
        printable = {"type": "string", "maxLength": limit, "pattern": PRINTABLE}
        return {"allOf": [printable, {"pattern": TEXT}]} if required else printable

    return {
        "type": "object", "required": ["email", "name", "line1", "country"],
        "properties": {
            "email": {"type": "string", "maxLength": 254,
                      "pattern": r"^[^@\s\u0000-\u001f\u007f-\u009f]{1,64}@[^@\s\u0000-\u001f\u007f-\u009f]+"
                                 r"\.[^@\s\u0000-\u001f\u007f-\u009f]+$"},
            "name": text(200, required=True), "line1": text(200, required=True),
            "line2": text(200), "city": text(100), "state": text(100), "postalCode": {**text(20), "description": (
                "the country's format where it has one (Google's address data; letters in either case, "
                "spaces as typed): else 400 naming postalCode")},
            "country": {"enum": codes, "description": "ISO 3166 two-letter code"},
        },
        "allOf": [{"if": {"properties": {"country": {"enum": countries_alike}}, "required": ["country"]},
                   "then": {"required": list(fields),
                            "properties": {field: {"pattern": TEXT} for field in fields}}}
                  for fields, countries_alike in by_requirement.items() if fields],
    }


def document() -> dict:
    max_quantity = current_app.config["STOREFRONT"].max_hold_quantity
    proof_of_work = current_app.config["STOREFRONT"].queue_proof_of_work > 0
    quantity = {"type": "integer", "minimum": 1, "maximum": max_quantity, "default": 1}
    reservation_path = {"name": "reservationId", "in": "path", "required": True, "schema": UUID}
    checkout_path = {"name": "checkoutId", "in": "path", "required": True, "schema": UUID}
    draw_path = {"name": "productId", "in": "path", "required": True, "schema": PRODUCT_ID,
                 "description": "a draw's product, or one of its options (they share its draw)"}
    queue_path = {"name": "productId", "in": "path", "required": True, "schema": PRODUCT_ID,
                  "description": "a queued product, or one of its options (they share its line)"}
    delivery_schema = _delivery_schema()

    def delivery(what: str, path_parameter: dict, operation_id: str) -> dict:
        return {"post": {
            "operationId": operation_id,
            "summary": f"Delivery details for a {what}'s order, given in its payment form before paying",
            "parameters": [path_parameter, VISITOR_HEADER],
            "requestBody": {"required": True, "content": _json(delivery_schema)},
            "responses": {"200": {"description": "kept on the order (and on the PaymentIntent)",
                                  "content": _json({"type": "object"})},
                          "409": {"description": f"the {what} can no longer be paid, or buyer_limit (with field: "
                                                 "email or address) when the details tell a buyer who has as many "
                                                 "of a product as its limit per buyer allows",
                                  "content": _json(_error("field", "limit", "held", "productId"))},
                          **ERRORS},
        }}

    def link(operation_id: str, **parameters: str) -> dict:
        return {"operationId": operation_id, "parameters": parameters}

    hold_links = {
        "GetHold": link("getReservation", **{"path.reservationId": "$response.body#/reservationId",
                                              "header.X-Visitor-Id": "$response.body#/userId"}),
        "ReleaseHold": link("releaseReservation", **{"path.reservationId": "$response.body#/reservationId",
                                                      "header.X-Visitor-Id": "$response.body#/userId"}),
        "GiveDelivery": link("holdDelivery", **{"path.reservationId": "$response.body#/reservationId",
                                                 "header.X-Visitor-Id": "$response.body#/userId"}),
    }
    return _with_common_refusals({
        "openapi": "3.1.0",
        "info": {"title": "Storefront API", "version": "1", "description": "Limited stock, never oversold."},
        "paths": {
            "/api/inventory/check/{productId}": {"get": {
                "operationId": "checkStock",
                "summary": "Live stock of a product (with HX-Request: the Buy button fragment)",
                "parameters": [{"name": "productId", "in": "path", "required": True, "schema": PRODUCT_ID},
                               {"name": "If-None-Match", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {
                    "304": {"description": "unchanged since the ETag given in If-None-Match"},
                    "200": {"description": "stock (with an ETag of the product's total and available units)",
                            "content": _json({
                        "type": "object", "required": ["productId", "available", "total", "inStock"],
                        "properties": {"productId": {"type": "integer"}, "available": {"type": "integer"},
                                       "total": {"type": "integer"}, "inStock": {"type": "boolean"},
                                       # a product with a start time: whether it came, and when
                                       "onSale": {"type": "boolean"},
                                       "startsAt": {"type": "string", "format": "date-time"}}})},
                    "404": ERRORS["404"],
                },
            }},
            "/api/reservations": {"post": {
                "operationId": "placeHold",
                "summary": "Hold units of a product for a visitor (the page's Buy button sends the same as a form)",
                "requestBody": {"required": True, "content": _json({
                    "type": "object", "required": ["productId", "userId"], "properties": {
                        "productId": PRODUCT_ID, "userId": VISITOR_ID, "quantity": quantity}})},
                "responses": {
                    "201": {"description": "a new hold", "content": _json(HOLD), "links": hold_links},
                    "200": {"description": "this visitor's live hold on the product", "content": _json(HOLD),
                            "links": hold_links},
                    "400": ERRORS["400"],
                    "404": ERRORS["404"],
                    "409": {"description": "out_of_stock (with available), hold_limit (per visitor, per "
                                           "address or per pass, with limit and held), not_on_sale (with startsAt) "
                                           "before the product's start time, paused, buyer_limit, or not_admitted "
                                           "(with position and admittedThrough) for a queued drop without a live "
                                           "pass",
                            "content": _json(_error("available", "limit", "held", "per", "startsAt", "position",
                                                    "admittedThrough", "productId"))},
                    "413": {"description": "body too large", "content": _json(_error())},
                    "429": {"description": "too many holds from this address (Retry-After)",
                            "content": _json(_error())},
                },
            }},
            "/api/reservations/{reservationId}": {
                "get": {"operationId": "getReservation", "summary": "A visitor's hold",
                        "parameters": [reservation_path, VISITOR_HEADER],
                        "responses": {"200": {"description": "the hold", "content": _json(HOLD)}, **ERRORS}},
                "delete": {"operationId": "releaseReservation", "summary": "Release a PENDING hold",
                           "parameters": [reservation_path, VISITOR_HEADER],
                           "responses": {"200": {"description": "now CANCELLED", "content": _json(HOLD)},
                                         "409": {"description": "not PENDING, or its payment is processing",
                                                 "content": _json(_error("status"))},
                                         **ERRORS}},
            },
            "/api/reservations/{reservationId}/delivery": delivery("hold", reservation_path, "holdDelivery"),
            "/api/checkouts/{checkoutId}/delivery": delivery("checkout", checkout_path, "checkoutDelivery"),
            "/api/webhooks/stripe": {"post": {
                "operationId": "stripeWebhook",
                "summary": "Stripe's webhook (Stripe-Signature over the raw body, 300 s tolerance)",
                "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": _json({"type": "object"})},
                "responses": {
                    "200": {"description": "received", "content": _json({"type": "object"})},
                    "400": {"description": "missing, wrong or stale signature (what an unsigned body gets)",
                            "content": _json(_error())},
                    "503": {"description": "not durably handed over: deliver again", "content": _json(_error())},
                },
            }},
            "/api/cart": {"get": {
                "operationId": "getCart", "summary": "The visitor's cart", "parameters": [VISITOR_HEADER],
                "responses": {"200": {"description": "the cart", "content": _json(CART)}, "400": ERRORS["400"]},
            }},
            "/api/cart/items": {"post": {
                "operationId": "setCartLine",
                "summary": f"Set a line of the cart (productId, quantity 1 to {max_quantity})",
                "parameters": [VISITOR_HEADER],
                "requestBody": {"required": True, "content": _json({
                    "type": "object", "required": ["productId"], "properties": {
                        "productId": PRODUCT_ID, "quantity": quantity}})},
                "responses": {"200": {"description": "the cart", "content": _json(CART), "links": {
                    "RemoveLine": link("removeCartLine", **{"path.productId": "$request.body#/productId",
                                                             "header.X-Visitor-Id": "$request.header.X-Visitor-Id"}),
                    "CheckOut": link("checkOut", **{"header.X-Visitor-Id": "$request.header.X-Visitor-Id"})}},
                    "409": {"description": "cart_full", "content": _json(_error())}, **ERRORS},
            }},
            "/api/cart/items/{productId}": {"delete": {
                "operationId": "removeCartLine",
                "summary": "Remove a line of the cart",
                "parameters": [{"name": "productId", "in": "path", "required": True, "schema": PRODUCT_ID},
                               VISITOR_HEADER],
                "responses": {"200": {"description": "the cart", "content": _json(CART)}, **ERRORS},
            }},
            "/api/checkouts": {"post": {
                "operationId": "checkOut",
                "summary": "Hold every line of the cart, all or none",
                "parameters": [VISITOR_HEADER],
                "requestBody": {"required": False, "content": _json({"type": "object"})},
                "responses": {
                    "201": {"description": "the checkout", "content": _json({
                        "type": "object", "required": ["checkoutId", "reservations", "amount", "currency", "expiresAt"],
                        "properties": {"checkoutId": UUID, "reservations": {"type": "array", "items": HOLD},
                                       "amount": {"type": "integer"}, "currency": {"type": "string"},
                                       "expiresAt": {"type": "string", "format": "date-time"}}}),
                            "links": {"GiveDelivery": link("checkoutDelivery", **{
                                "path.checkoutId": "$response.body#/checkoutId",
                                "header.X-Visitor-Id": "$request.header.X-Visitor-Id"})}},
                    "400": {"description": "empty_cart or a malformed visitor id", "content": _json(_error("field"))},
                    "409": {"description": "out_of_stock (items: productId, available), not_on_sale (items: "
                                           "productId, startsAt), mixed_currencies, hold_limit, paused, "
                                           "buyer_limit, or not_admitted for a queued drop's line without a live pass",
                            "content": _json(_error("items", "limit", "held", "position", "admittedThrough",
                                                    "productId"))},
                    "429": {"description": "too many holds from this address", "content": _json(_error())},
                },
            }},
            "/api/orders": {"get": {
                "operationId": "getOrders",
                "summary": "The visitor's holds and purchases, newest first", "parameters": [VISITOR_HEADER],
                "responses": {"200": {"description": "orders", "content": _json({
                    "type": "object", "properties": {"orders": {"type": "array", "items": HOLD}}})},
                    "400": ERRORS["400"]},
            }},
            "/api/queue/challenge": {"get": {
                "operationId": "queueChallenge",
                "summary": "An ALTCHA proof-of-work challenge to solve before joining a line",
                "responses": {"200": {"description": "a challenge, as ALTCHA's widget reads it", "content": _json({
                    "type": "object", "required": ["algorithm", "challenge", "maxnumber", "salt", "signature"],
                    "properties": {"algorithm": {"type": "string"}, "challenge": {"type": "string"},
                                   "maxnumber": {"type": "integer"}, "salt": {"type": "string"},
                                   "signature": {"type": "string"}}})},
                    "404": {"description": "the proof of work is off (QUEUE_PROOF_OF_WORK=0)",
                            "content": _json(_error())}},
            }},
            "/api/queue/{productId}/entries": {"post": {
                "operationId": "joinQueue",
                "summary": "Join a queued drop's line: one place per owner",
                "parameters": [queue_path],
                # The contract asks for altcha while the proof of work is on: the schema says so then.
                "requestBody": {"required": True, "content": _json({
                    "type": "object", "required": ["userId", "altcha"] if proof_of_work else ["userId"],
                    "properties": {
                        "userId": VISITOR_ID,
                        "entryId": {"type": "string", "format": "uuid",
                                    "description": "the entry's id, drawn by the client (crypto.randomUUID()) so "
                                                   "that nobody chooses where it ranks; lower case"},
                        "altcha": {"type": "string", "description": "the solved challenge's base64 JSON payload"}}})},
                "responses": {
                    "201": {"description": "a new place", "content": _json(ENTRY)},
                    "200": {"description": "this owner's place, as it was", "content": _json(ENTRY)},
                    "400": {"description": "a missing or malformed field (altcha: missing, wrong, lapsed or used; "
                                           "entryId: malformed or taken)",
                            "content": _json(_error("field"))},
                    "404": ERRORS["404"],
                    "409": {"description": "queue_not_open (with opensAt), no_queue, paused, or out_of_stock once "
                                           "nothing is left to wait for",
                            "content": _json(_error("opensAt", "available"))},
                    "429": {"description": "too_many_entries from this address", "content": _json(_error("limit"))},
                },
            }},
            "/api/queue/{productId}": {"get": {
                "operationId": "queueStanding",
                "summary": "How a queued drop's line stands: a shared answer, the same for every reader",
                "parameters": [queue_path],
                "responses": {"200": {"description": "the line", "content": _json(STANDING)},
                              "404": ERRORS["404"],
                              "409": {"description": "no_queue", "content": _json(_error())}},
            }},
            "/api/queue/{productId}/entries.csv": {"get": {
                "operationId": "publishedLine",
                "summary": "Every place in a queued drop's line, from the start: a shared answer anyone can "
                           "check against the revealed seed (scripts/check_line.py)",
                "parameters": [queue_path],
                "responses": {"200": {"description": "position,entry_id,joined (before: ranked by "
                                                     "HMAC-SHA256(seed, entry id); after: in order of arrival)",
                                      "content": {"text/csv": {"schema": {"type": "string"}}}},
                              "404": ERRORS["404"],
                              "409": {"description": "no_queue, or not_started (with startsAt)",
                                      "content": _json(_error("startsAt"))}},
            }},
            "/api/queue/{productId}/entries/mine": {"get": {
                "operationId": "myPlace",
                "summary": "The owner's place in a queued drop's line",
                "parameters": [queue_path, VISITOR_HEADER],
                "responses": {"200": {"description": "the place", "content": _json(PLACE)},
                              "409": {"description": "no_queue", "content": _json(_error())}, **ERRORS},
            }},
            "/api/draws/{productId}/entries": {"post": {
                "operationId": "enterDraw",
                "summary": "Enter a draw: one entry per buyer and per card; the card is authorised for one unit "
                           "(capture_method=manual) and charged only if the entry wins",
                "parameters": [draw_path],
                "requestBody": {"required": True, "content": _json({
                    **delivery_schema,
                    "required": ["userId", "productId", *delivery_schema["required"],
                                 *(["altcha"] if proof_of_work else [])],
                    "properties": {
                        **delivery_schema["properties"],
                        "userId": VISITOR_ID,
                        "productId": {**PRODUCT_ID, "description": "the option wanted (or the product itself)"},
                        "backupProductId": {**PRODUCT_ID, "description": "a second choice: another option"},
                        "entryId": {"type": "string", "format": "uuid",
                                    "description": "the entry's id, drawn by the client (crypto.randomUUID())"},
                        "altcha": {"type": "string", "description": "the solved challenge's base64 JSON payload"}}})},
                "responses": {
                    "201": {"description": "the entry, pending its card's authorisation", "content": _json({
                        **DRAW_ENTRY, "required": [*DRAW_ENTRY["required"], "amount", "currency", "clientSecret"],
                        "properties": {**DRAW_ENTRY["properties"], "amount": {"type": "integer"},
                                       "currency": {"type": "string"},
                                       "clientSecret": {"type": ["string", "null"]}}})},
                    "400": {"description": "a missing or malformed field (productId, backupProductId, delivery, "
                                           "entryId, altcha)", "content": _json(_error("field"))},
                    "404": ERRORS["404"],
                    "409": {"description": "draw_not_open (with opensAt), draw_closed (with closesAt), no_draw, "
                                           "paused, already_entered (with field: owner, email, address)",
                            "content": _json(_error("field", "opensAt", "closesAt"))},
                },
            }},
            "/api/draws/{productId}": {"get": {
                "operationId": "drawStanding",
                "summary": "How a draw stands: a shared answer, the same for every reader",
                "parameters": [draw_path],
                "responses": {"200": {"description": "the draw", "content": _json(DRAW_STANDING)},
                              "404": ERRORS["404"],
                              "409": {"description": "no_draw", "content": _json(_error())}},
            }},
            "/api/draws/{productId}/entries/mine": {
                "get": {
                    "operationId": "myEntry",
                    "summary": "The owner's entry in a draw",
                    "parameters": [draw_path, VISITOR_HEADER],
                    "responses": {"200": {"description": "the entry", "content": _json(DRAW_ENTRY)},
                                  "409": {"description": "no_draw", "content": _json(_error())}, **ERRORS},
                },
                "delete": {
                    "operationId": "withdrawEntry",
                    "summary": "Withdraw the owner's entry before the close: its authorisation is cancelled",
                    "parameters": [draw_path, VISITOR_HEADER],
                    "responses": {"200": {"description": "the entry, withdrawn", "content": _json(DRAW_ENTRY)},
                                  "409": {"description": "draw_closed, or no_draw", "content": _json(_error())},
                                  **ERRORS},
                },
            },
            "/api/draws/{productId}/results.csv": {"get": {
                "operationId": "drawResults",
                "summary": "Every ranked entry once drawn, with its outcome: a shared answer anyone can check "
                           "against the revealed seed",
                "parameters": [draw_path],
                "responses": {"200": {"description": "rank,entry_id,outcome,product_id (rank: by HMAC-SHA256(seed, "
                                                     "entry id), lowest first)",
                                      "content": {"text/csv": {"schema": {"type": "string"}}}},
                              "404": ERRORS["404"],
                              "409": {"description": "no_draw, or not_drawn (with closesAt)",
                                      "content": _json(_error("closesAt"))}},
            }},
            "/api/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/api/docs": {"get": {"operationId": "apiDocs", "summary": "This document, browsable (Swagger UI)",
                                  "responses": {"200": {"description": "an HTML page",
                                                        "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process is up",
                                 "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Database, Redis and Kafka answer",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "names what is down"}}}},
        },
    })


CROSS_SITE = {"description": "cross_site: a browser said another site's page sent it (Sec-Fetch-Site or "
                             "Origin); nothing changed", "content": _json(_error())}
MEDIA_TYPE = {"description": "unsupported_media_type: a body that is neither JSON nor a form (names "
                             "Content-Type)", "content": _json(_error("header"))}


def _with_common_refusals(spec: dict) -> dict:
    """What every state-changing operation may answer besides its own (storefront/security.py and
    params.request_body): 403 to another site's page, 415 to a body of another type."""
    for path, operations in spec["paths"].items():
        if path == "/api/webhooks/stripe":  # Stripe's: judged by its signature on the raw body alone
            continue
        for method, operation in operations.items():
            if method in ("post", "put", "patch", "delete"):
                operation["responses"].setdefault("403", CROSS_SITE)
            if "requestBody" in operation:
                operation["responses"].setdefault("415", MEDIA_TYPE)
    return spec


@bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(document())


@bp.get("/api/docs")
def api_docs():
    """The same document, browsable: Swagger UI, vendored, reading it (nothing is sent from it)."""
    return render_template("openapi/docs.html")
