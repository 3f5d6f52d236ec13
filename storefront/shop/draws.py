"""A drop sold by a draw, as the shopper meets it: entering (with the card authorised in place),
one's own entry, withdrawing, how the draw stands (a shared answer), the published results and the
page that checks them. The rules are the inventory's (``inventory/draw.py``), the money the
payments' (``payments/draws.py``); this module reads the request and answers.
"""


from flask import current_app, render_template, request, url_for

from storefront import proof_of_work
from storefront.clock import isoformat_z, utcnow
from storefront.database import reading
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.htmx import wants_fragment
from storefront.inventory import draw
from storefront.inventory.models import EntryStatus
from storefront.orders.book import reference_of
from storefront.orders.delivery import InvalidDelivery, parse_delivery
from storefront.owners import client_address, owner_of, requesting_owner
from storefront.params import integer_field, invalid, optional_uuid, request_body
from storefront.payments.draws import authorise_demo, release_one, take_authorisation
from storefront.payments.gateway import PaymentError, gateway
from storefront.payments.intents import open_payment
from storefront.payments.payables import payable
from storefront.shop import bp
from storefront.shop.payments import demo_gateway, shop_url
from storefront.shop.published import shared_csv, shared_standing
from storefront.shop.refusals import REFUSED, paused_error, refusal


def _draw_product(conn, product_id: int) -> draw.DrawProduct:
    try:
        return draw.draw_product(conn, product_id)
    except (draw.NotADrawProduct, draw.NoDraw) as refused:
        raise refusal(refused) from None


def entry_json(entry) -> dict:
    return {"entryId": str(entry.id), "status": entry.status, "rank": entry.rank, "productId": entry.choice_id,
            "backupProductId": entry.backup_id, "wonProductId": entry.won_product_id if entry.status == "won" else None,
            "paymentIntentId": entry.payment_intent_id}


def _entry_payable(entry):
    with reading() as conn:
        return payable(conn, "entry", entry.id)


@bp.post("/api/draws/<product_id:product_id>/entries")
def enter_draw(product_id: int):
    settings = current_app.config["STOREFRONT"]
    data = request_body()
    owner = owner_of(data.get("userId"))
    choice = integer_field(data, "productId", low=1, high=2**31 - 1)
    backup = (integer_field(data, "backupProductId", low=1, high=2**31 - 1)
              if data.get("backupProductId") not in (None, "") else None)
    entry_id = optional_uuid(data, "entryId")
    try:
        delivery = parse_delivery(data)
    except InvalidDelivery as wrong:
        raise invalid(wrong.field, wrong.message) from None
    now = utcnow()
    with reading() as conn:
        product = _draw_product(conn, product_id)
    try:
        with db.engine.begin() as conn:
            if product.opens_at <= now < product.closes_at and product.paused:
                raise paused_error()
            if product.opens_at <= now < product.closes_at and settings.queue_proof_of_work > 0:
                proof_of_work.spend(conn, data.get("altcha"), now)
            entry = draw.enter(conn, product, owner, client_address(), now, choice=choice, backup=backup,
                               delivery=delivery.columns(), entry_id=entry_id, shop_url=shop_url())
    except draw.EntryIdTaken:
        raise invalid("entryId", "This entry id is taken: draw another (crypto.randomUUID()).") from None
    except draw.NotAChoice as wrong:
        raise invalid(wrong.field, wrong.message) from None
    except proof_of_work.NotSolved as unsolved:
        raise invalid("altcha", f"{unsolved} (GET /api/queue/challenge gives one).") from None
    except REFUSED as refused:
        raise refusal(refused) from None
    session = open_payment(_entry_payable(entry))  # the card is authorised in place: manual capture
    with reading() as conn:
        entry = draw.entry_by_id(conn, entry.id)
    if wants_fragment():
        return _entry_fragment(product, entry, session=session, status=201)
    body = {**entry_json(entry), "amount": entry.authorised_amount, "currency": entry.currency,
            "clientSecret": session.client_secret if session else None}
    return body, 201


@bp.get("/api/draws/<product_id:product_id>")
def draw_standing(product_id: int):
    with reading() as conn:  # the first reader after the opening draws the seed (one statement, autocommitted)
        product = _draw_product(conn, product_id)
        standing = draw.standing(conn, product, utcnow())
    return shared_standing(standing.as_json(), "d", "shop/_draw.html", standing=standing)


# One rule for both methods: a productId out of range is then a 404 for either (with two rules, werkzeug
# names the other's method and answers 405).
@bp.route("/api/draws/<product_id:product_id>/entries/mine", methods=["GET", "DELETE"])
def my_entry(product_id: int):
    if request.method == "DELETE":
        return withdraw_entry(product_id)
    owner = requesting_owner()
    with reading() as conn:
        product = _draw_product(conn, product_id)
        entry = draw.own_entry(conn, product, owner)
    if entry is None:
        raise not_found("You have no entry in this draw.")
    return entry_json(entry)


def withdraw_entry(product_id: int):
    """``DELETE /api/draws/<id>/entries/mine``: the owner withdraws before the close."""
    owner = requesting_owner()
    with reading() as conn:
        product = _draw_product(conn, product_id)
    try:
        with db.engine.begin() as conn:
            entry = draw.withdraw(conn, product, owner, utcnow())
    except draw.NoEntry:
        raise not_found("You have no entry in this draw.") from None
    except REFUSED as refused:
        raise refusal(refused) from None
    if entry.payment_intent_id and entry.released_at is None:
        release_one(entry.id, entry.payment_intent_id)  # unreachable: the sweep releases it
    if wants_fragment():
        return _entry_fragment(product, entry)
    return entry_json(entry)


@bp.post("/draws/<product_id:product_id>/entries/<entry_id>/demo-authorise")
def demo_authorise(product_id: int, entry_id: str):
    """The demo gateway's card check: the entry is authorised at once (no card, no money)."""
    demo_gateway()
    owner = requesting_owner()
    with reading() as conn:
        product = _draw_product(conn, product_id)
        entry = draw.own_entry(conn, product, owner)
    if entry is None or str(entry.id) != entry_id:
        raise not_found("No such entry.")
    if entry.status == EntryStatus.PENDING_PAYMENT and entry.payment_intent_id is None:
        open_payment(_entry_payable(entry))
        with reading() as conn:
            entry = draw.entry_by_id(conn, entry.id)
    if entry.status == EntryStatus.PENDING_PAYMENT:
        if utcnow() >= product.closes_at:
            raise refusal(draw.DrawClosed(product.closes_at))
        authorise_demo(entry)
        with reading() as conn:
            entry = draw.entry_by_id(conn, entry.id)
    if wants_fragment():
        return _entry_fragment(product, entry)
    return entry_json(entry)


@bp.get("/draws/<product_id:product_id>/entry")
def entry_fragment(product_id: int):
    """The shopper's own entry on the product's page (private), polled while something may change.
    Named intent (``?payment_intent=``, after the Payment Element authorised it): Stripe is asked at
    once, before the webhook comes."""
    owner = requesting_owner()
    with reading() as conn:
        product = _draw_product(conn, product_id)
        entry = draw.own_entry(conn, product, owner)
    named = request.args.get("payment_intent")
    if entry is not None and named and named == entry.payment_intent_id \
            and entry.status == EntryStatus.PENDING_PAYMENT and not gateway().demo:
        try:
            take_authorisation(entry.id, gateway().retrieve(named))
        except PaymentError:
            pass  # the webhook says so in a moment; the page keeps asking
        with reading() as conn:
            entry = draw.entry_by_id(conn, entry.id)
    session = None
    if entry is not None and entry.status == EntryStatus.PENDING_PAYMENT and not named \
            and utcnow() < product.closes_at:
        session = open_payment(_entry_payable(entry))
    return _entry_fragment(product, entry, session=session)


def _entry_fragment(product: draw.DrawProduct, entry, *, session=None, status: int = 200):
    now = utcnow()
    with reading() as conn:
        found = draw.draw_of(conn, product, now) if now >= product.opens_at else None
    state = draw.state_of(product, found, now)
    body = render_template("shop/_entry.html", product=product, entry=entry, state=state, session=session,
                           reference=reference_of(entry.id) if entry is not None and entry.status == "won" else None,
                           proof_of_work=current_app.config["STOREFRONT"].queue_proof_of_work > 0)
    return body, status


@bp.get("/api/draws/<product_id:product_id>/results.csv")
def draw_results(product_id: int):
    """Once drawn: ``rank,entry_id,outcome,product_id`` for every ranked entry (a shared answer), so that
    anyone can recompute the order from the revealed seed and follow the walk."""
    with reading() as conn:
        product = _draw_product(conn, product_id)
        found = conn.execute(draw.draws.select().where(draw.draws.c.product_id == product.id)).first()
        if found is None or found.walked_at is None:
            raise ApiError(409, "not_drawn", f"The draw is made after entries close at {isoformat_z(product.closes_at)}.",
                           closesAt=isoformat_z(product.closes_at))
        ranked = draw.results(conn, product)
    return shared_csv(["rank", "entry_id", "outcome", "product_id"],
                      ((result.rank, str(result.entry_id), result.outcome,
                        "" if result.product_id is None else result.product_id) for result in ranked), "r")


@bp.get("/products/<product_id:product_id>/draw")
def draw_check_page(product_id: int):
    """Check the draw: the reader's browser recomputes the ranking from the seed and the results."""
    with reading() as conn:
        product = _draw_product(conn, product_id)
    return render_template("shop/draw_check.html", product=product,
                           standing_url=url_for("shop.draw_standing", product_id=product.id),
                           list_url=url_for("shop.draw_results", product_id=product.id),
                           mine_url=url_for("shop.my_entry", product_id=product.id))
