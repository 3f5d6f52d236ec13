"""A queued drop's waiting room as the shopper meets it: the door's challenge, joining, how the
line stands (a shared answer, the same for every reader), and one's own place (private).
The rules are the inventory's (``inventory/queue.py``); this module reads the request and answers.
"""


from flask import current_app, render_template
from sqlalchemy import Connection, select

from storefront import proof_of_work
from storefront.catalog.models import products
from storefront.clock import isoformat_z, utcnow
from storefront.database import reading
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.htmx import wants_fragment
from storefront.inventory import queue
from storefront.inventory.stock import stock_levels
from storefront.owners import client_address, owner_of, requesting_owner
from storefront.params import invalid, optional_uuid, request_body
from storefront.shop import bp
from storefront.shop.published import shared_csv, shared_standing
from storefront.shop.refusals import REFUSED, paused_error, refusal


def _settings():
    return current_app.config["STOREFRONT"]


def _queued_product(conn: Connection, product_id: int) -> queue.QueuedProduct:
    try:
        return queue.queued_product(conn, product_id, _settings().queue_opens_before_seconds)
    except (queue.NotAQueuedProduct, queue.NoQueue) as refused:
        raise refusal(refused) from None


def _step_if_due(product: queue.QueuedProduct) -> None:
    """Admit whoever the stock allows now, at most once a second per product, never waiting for
    another request's step (it is doing the same work)."""
    now = utcnow()
    with reading() as conn:
        room = queue.room_as_it_is(conn, product)
    if queue.due_for_a_step(room, product, now):
        with db.engine.begin() as conn:
            queue.advance(conn, product, now, _settings().queue_pass_seconds, skip_locked=True)


@bp.get("/api/queue/challenge")
def queue_challenge():
    """A proof-of-work challenge, as ALTCHA's widget asks for it (its ``challengeurl``)."""
    work = _settings().queue_proof_of_work
    if work == 0:
        raise not_found("Joining a line asks for no proof of work here.")
    return proof_of_work.challenge(work)


@bp.post("/api/queue/<product_id:product_id>/entries")
def join_queue(product_id: int):
    settings = _settings()
    data = request_body()
    owner = owner_of(data.get("userId"))
    entry_id = optional_uuid(data, "entryId")
    now = utcnow()
    with reading() as conn:
        product = _queued_product(conn, product_id)
    try:
        with db.engine.begin() as conn:
            existing = queue.own_entry(conn, product, owner)
            joining = existing is None or queue.turn_over(conn, product, existing, now)
            if joining and now >= product.opens_at and settings.queue_proof_of_work > 0:
                proof_of_work.spend(conn, data.get("altcha"), now)
            if joining and now >= product.opens_at and product.paused:
                raise paused_error()
            entry, created = queue.join(conn, product, owner, client_address(), now,
                                        queue.QueueSettings.of(settings), entry_id)
    except queue.EntryIdTaken:
        raise invalid("entryId", "This entry id is taken: draw another (crypto.randomUUID()).") from None
    except proof_of_work.NotSolved as unsolved:
        raise invalid("altcha", f"{unsolved} (GET /api/queue/challenge gives one).") from None
    except REFUSED as refused:
        raise refusal(refused) from None
    with reading() as conn:
        place = queue.place_of(conn, product, owner, utcnow())
    if wants_fragment():
        return _place_fragment(product, place, 201 if created else 200)
    body = {"entryId": str(entry.id), "productId": product.id, "status": place.status, "position": place.position,
            "joinedAt": isoformat_z(entry.joined_at)}
    return body, 201 if created else 200


@bp.get("/api/queue/<product_id:product_id>")
def queue_standing(product_id: int):
    with reading() as conn:
        product = _queued_product(conn, product_id)
    _step_if_due(product)
    now = utcnow()
    with reading() as conn:
        standing = queue.standing(conn, product, now)
    return shared_standing(standing.as_json(), "q", "shop/_queue.html", standing=standing)


@bp.get("/api/queue/<product_id:product_id>/entries.csv")
def published_line(product_id: int):
    """Every place, from the start: ``position,entry_id,joined``, a shared answer, so that anyone can
    recompute the order from the revealed seed (docs/drops.md says what that proves)."""
    with reading() as conn:
        product = _queued_product(conn, product_id)
    _step_if_due(product)
    if utcnow() < product.starts_at:
        raise ApiError(409, "not_started", f"The places are drawn at {isoformat_z(product.starts_at)}.",
                       startsAt=isoformat_z(product.starts_at))
    with reading() as conn:
        places = queue.published_places(conn, product)
    return shared_csv(["position", "entry_id", "joined"],
                      ((place.position, str(place.entry_id), place.joined) for place in places), "l")


@bp.get("/products/<product_id:product_id>/line")
def line_check_page(product_id: int):
    """Check the line: the reader's browser recomputes the order from the seed and the published list."""
    with reading() as conn:
        product = _queued_product(conn, product_id)
        name = conn.execute(select(products.c.name).where(products.c.id == product.id)).scalar_one()
    return render_template("shop/line_check.html", product=product, name=name)


@bp.get("/api/queue/<product_id:product_id>/entries/mine")
def my_place(product_id: int):
    owner = requesting_owner()
    with reading() as conn:
        product = _queued_product(conn, product_id)
    _step_if_due(product)
    with reading() as conn:
        place = queue.place_of(conn, product, owner, utcnow())
    if wants_fragment():
        return _place_fragment(product, place)
    if place is None:
        raise not_found("You have no place in this line.")
    return place.as_json()


def _place_fragment(product: queue.QueuedProduct, place, status: int = 200):
    """One shopper's place: read per shopper every few seconds, so it reads only what its state shows
    (never the line's length, which the shared standing counts)."""
    now = utcnow()
    context = {}
    with reading() as conn:
        if place is None or place.status in ("expired", "closed"):  # the join form, or why it is closed
            context["state"] = queue.line_state(conn, product, queue.room_of(conn, product, now), now)
        elif place.status == "waiting" and place.position is not None:
            context["admitted_last_minute"] = queue.admitted_last_minute(conn, product, now)
            # Next, and nothing to let in: say why (every unit left is held by someone paying).
            context["available"] = sum(stock.available for stock in stock_levels(conn, product.item_ids).values())
        elif place.status == "admitted":
            context["options"] = _options(conn, product)
    body = render_template("shop/_place.html", product=product, place=place, now=now, **context)
    return body, status


def _options(conn: Connection, product: queue.QueuedProduct):
    """What an admitted place may buy: the product, or each of its options, with its label and stock."""
    rows = conn.execute(select(products.c.id, products.c.option_label)
                        .where(products.c.id.in_(product.item_ids)).order_by(products.c.id)).all()
    levels = stock_levels(conn, product.item_ids)
    return [(row.id, row.option_label, levels[row.id].available) for row in rows]
