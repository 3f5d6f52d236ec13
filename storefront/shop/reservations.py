import functools
import hashlib
import json
import logging

from flask import current_app, jsonify, render_template, request
from sqlalchemy import Connection, select

from storefront.catalog.models import products
from storefront.clock import utcnow
from storefront.database import reading
from storefront.envelope import SHARED
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront import htmx
from storefront.htmx import wants_fragment, wants_shared_fragment
from storefront.inventory import grants
from storefront.inventory import holds as hold_book
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import current_stock, stock_of
from storefront.metrics import HOLDS
from storefront.owners import Owner, client_address, owner_if_named, owner_of, requesting_owner
from storefront.params import integer_field, request_body, reservation_id
from storefront.payments.gateway import gateway
from storefront.payments.payables import hold_payable
from storefront.payments.reconcile import close_intent, mark_intent_settled
from storefront.ratelimit import RateLimited, counted_by_the_hold_function, hold_rate, rate_limited
from storefront.shop import bp
from storefront.shop.payments import owned_payable, pay_with_demo, payable_page, payment_form, take_delivery
from storefront.shop.refusals import REFUSED, refusal

# The hold pages (the hold, a checkout's lines) show a lapsed PENDING hold as EXPIRED.
bp.add_app_template_global(hold_book.status_of, "hold_status")
HOLDS_CREATED, HOLDS_EXISTING = HOLDS.labels("created"), HOLDS.labels("existing")
HOLDS_OUT_OF_STOCK = HOLDS.labels("out_of_stock")
log = logging.getLogger(__name__)
# The hot answers' JSON, compact: one encoder, where json.dumps(separators=...) builds one per call.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _settings():
    return current_app.config["STOREFRONT"]


def _product(conn: Connection, product_id: int):
    product = conn.execute(select(products).where(products.c.id == product_id)).first()
    if product is None:
        raise not_found("No such product.")
    return product


def hold_fragment(hold, status: int = 200, *, confirming: bool = False, changed: bool = False, **context):
    """The hold as its visitor sees it, with the payment form while it can be paid (shop/payments.py:
    payment_form, as a checkout's).

    When the hold just changed the stock (``changed``: placed or released) or is no longer live (lapsed,
    paid), the answer tells the page (HX-Trigger stock-changed), which asks for its live parts at once:
    the stock, and a drop's line and place, in one swap (static/js/storefront.js).
    """
    now = utcnow()
    paid, payment, confirming = payment_form(hold_payable(hold), confirming)
    hold = paid.row
    live = hold_book.status_of(hold, now) == HoldStatus.PENDING
    with reading() as conn:
        product = _product(conn, hold.product_id)
    body = render_template(
        "shop/_hold.html",
        hold=hold,
        product=product,
        now=now,
        payment=payment,
        gateway=gateway(),
        confirming=confirming and live,
        buyer_limits=[(product.name, product.per_buyer)] if product.per_buyer is not None else [],
        **context,
    )
    return body, status, (htmx.trigger("stock-changed") if changed or not live else {})


@bp.get("/api/inventory/check/<product_id:product_id>")
def check_stock(product_id: int):
    stock = current_stock(product_id)
    if stock is None:
        raise not_found("No such product.")
    # Exact every time (read fresh), and cheap to repeat: an unchanged answer is a 304. A shared
    # answer: the same bytes for every reader, so a shared cache (nginx, a CDN) may answer a crowd's
    # polls for a second; every browser revalidates (304).
    fragment = wants_shared_fragment()
    body, etag = stock_answer(stock, fragment=fragment)
    headers = {"ETag": etag, "Cache-Control": SHARED}
    if etag in request.headers.get("If-None-Match", ""):
        return "", 304, headers
    if fragment:
        return body, 200, headers
    return current_app.response_class(body, 200, headers, mimetype="application/json")


STOCK_ANSWERS_KEPT = 10_000


def stock_answer(stock, *, fragment: bool) -> tuple[str, str]:
    """The stock as JSON, or as its Buy button, with its ETag (a digest of those very bytes: one
    ETag, one body). Either depends on the stock alone (a start is a moment in it, never the seconds
    left), and every open product page asks every few seconds: made once per stock."""
    made = current_app.extensions.setdefault("storefront.stock_answers", {})
    key = (stock, fragment)
    answer = made.get(key)
    if answer is None:
        if len(made) >= STOCK_ANSWERS_KEPT:
            made.clear()
        body = render_template("shop/_stock.html", stock=stock) if fragment else compact_json(stock.as_json())
        digest = hashlib.blake2b(body.encode(), digest_size=12).hexdigest()
        answer = made[key] = (body, f'"s{digest}{"f" if fragment else "j"}"')
    return answer


@functools.lru_cache(maxsize=64)
def out_of_stock_body(available: int) -> str:
    """A refusal's JSON: it depends on the count alone (fewer than the quantity asked, so a few)."""
    answer = refusal(grants.OutOfStock([(0, available)]))
    return compact_json({"error": answer.code, "message": answer.message, **answer.extra})


# The metric's label for each refusal of a hold (HOLDS), where it is not the refusal's own code.
_METRIC_LABELS = {grants.ProductNotFound: "unknown_product"}


def _counted_as(refused: Exception, answer: ApiError) -> str:
    if isinstance(refused, grants.HoldLimit):
        return "hold_limit" if refused.per == "visitor" else "address_limit"
    return _METRIC_LABELS.get(type(refused)) or answer.code


@bp.post("/api/reservations")
@counted_by_the_hold_function
def create_reservation():
    settings = _settings()
    data = request_body()
    product_id = integer_field(data, "productId", low=1, high=2**31 - 1)
    owner = owner_of(data.get("userId"))
    quantity = integer_field(data, "quantity", low=1, high=settings.max_hold_quantity, default=1)

    address = client_address()
    try:
        placed = hold_book.place_hold(product_id, owner, address, quantity,
                                      settings.hold_ttl_seconds, grants.HoldLimits.of(settings), hold_rate(address))
    except RateLimited as limited:
        HOLDS.labels("rate_limited").inc()
        raise rate_limited(limited.wait_seconds) from None
    except grants.OutOfStock as short:
        HOLDS_OUT_OF_STOCK.inc()
        if wants_fragment():
            with reading() as conn:
                body = render_template(
                    "shop/_sold_out.html",
                    product=_product(conn, product_id),
                    stock=stock_of(conn, product_id),
                    asked=quantity,
                )
            return body, 409, htmx.trigger("stock-changed")  # the page's Buy follows at once
        # The answer a crowd gets once it is gone: the body the error handler would make
        # (error_response), without its exception round, and made once per count.
        return current_app.response_class(out_of_stock_body(short.available), 409, mimetype="application/json")
    except REFUSED as refused:
        answer = refusal(refused)
        HOLDS.labels(_counted_as(refused, answer)).inc()
        raise answer from None

    status = 201 if placed.created else 200
    (HOLDS_CREATED if placed.created else HOLDS_EXISTING).inc()
    if wants_fragment():
        return hold_fragment(placed.hold, status, changed=True)
    # The hot path's answer, serialised directly: the same JSON as jsonify, without its sorting.
    return current_app.response_class(compact_json(hold_book.hold_json(placed.hold)),
                                      status, mimetype="application/json")


def owned_hold(hold_id, owner: Owner, message: str = "No such reservation."):
    """The owner's hold, read in autocommit: 404 for an unknown one and for anyone else's alike."""
    return owned_payable("hold", hold_id, owner, message).row


@bp.get("/api/reservations/<reservation>")
def show_reservation(reservation: str):
    hold = owned_hold(reservation_id(reservation), requesting_owner())
    if wants_fragment():
        return hold_fragment(hold)
    return jsonify(hold_book.hold_json(hold))


def _not_pending(hold) -> ApiError:
    status = hold_book.status_of(hold)
    return ApiError(409, "not_pending", f"This hold is {status.lower()} and cannot be released.", status=status)


@bp.delete("/api/reservations/<reservation>")
def cancel_reservation(reservation: str):
    hold_id, owner = reservation_id(reservation), requesting_owner()
    hold = owned_hold(hold_id, owner)
    intent_status = None
    if hold.payment_intent_id and hold_book.status_of(hold) == HoldStatus.PENDING:
        # Stripe first: a hold whose payment went through is settled, never released unpaid.
        intent_status = close_intent(hold.payment_intent_id)
        if intent_status == "processing":
            raise ApiError(409, "payment_processing", "The payment for this hold is being processed.")
    try:
        with db.engine.begin() as conn:
            hold = hold_book.cancel_hold(conn, hold_id, owner)
    except hold_book.HoldNotFound:
        raise not_found("No such reservation.") from None
    except hold_book.HoldNotPending as not_pending:
        raise _not_pending(not_pending.hold) from None
    if intent_status == "canceled":
        mark_intent_settled(hold.payment_intent_id)
    if wants_fragment():
        return hold_fragment(hold, changed=True, on_hold_page=request.args.get("page") == "hold")
    return jsonify(hold_book.hold_json(hold))


@bp.get("/reservations/<reservation>")
def reservation_page(reservation: str):
    return payable_page("hold", reservation_id(reservation),
                        lambda paid, **shown: hold_fragment(paid.row, on_hold_page=True, **shown),
                        "No such reservation, or it belongs to another shopper.")


@bp.get("/products/<product_id:product_id>/hold")
def visitor_hold_slot(product_id: int):
    """What goes in the product page's checkout slot: the visitor's live hold, if any, after a reload."""
    owner = owner_if_named()
    with reading() as conn:
        _product(conn, product_id)  # 404 for an unknown product
        hold = grants.own_live_hold(conn, product_id, owner, utcnow()) if owner else None
    if hold is None:
        # 204: htmx swaps nothing, so a Buy pressed meanwhile keeps the hold it put here.
        return "", 204
    return hold_fragment(hold)


@bp.post("/reservations/<reservation>/demo-payment")
def demo_payment(reservation: str):
    """The demo gateway's Pay button for a hold."""
    paid = pay_with_demo("hold", reservation_id(reservation))
    # Paid from the hold's own page: no product page around it to bring its stock to.
    return hold_fragment(paid.row, confirming=True, on_hold_page=request.args.get("on_hold_page") == "1")


@bp.post("/api/reservations/<reservation>/delivery")
def hold_delivery(reservation: str):
    """The payment form's delivery details for a hold, sent just before the payment is confirmed."""
    return take_delivery("hold", reservation_id(reservation))
