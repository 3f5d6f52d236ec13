"""A draw's money: entries authorised, winners captured, everyone else's authorisation released.

The rules of a draw are the inventory's (``inventory/draw.py``); this module does what takes
Stripe, which no transaction may wait on:

- :func:`take_authorisation`: Stripe says an entry's card is authorised (the webhook's
  ``payment_intent.amount_capturable_updated``, or the intent's ``requires_capture`` when the
  shopper comes back): the entry is ``entered``, or ``duplicate`` (the same card entered before)
  and its authorisation cancelled;
- :func:`run_draw`, the job the sweep starts within a minute of the close: rank, then walk the
  ranking one entry at a time under the draw's lease. Each entry given a unit is committed as
  selected *before* its capture, and a walker always finishes a selected entry first, reading the
  intent before it captures: a walker killed anywhere is followed by one that neither captures
  twice (an intent already succeeded is settled, not captured) nor gives a unit twice (the unit is
  the selected entry's hold until it is sold or given back). A capture that fails forfeits;
- :func:`release_authorisations`: every entry that did not win has its intent cancelled, at once
  after the walk and by every sweep until Stripe says so;
- :func:`notify_entrants`: each decided entrant's email, once.
"""

import logging
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import parseaddr

from flask import current_app

from storefront import jobs
from storefront.clock import utcnow
from storefront.database import reading
from storefront.extensions import db
from storefront.formatting import money
from storefront.inventory import draw
from storefront.inventory.models import EntryStatus
from storefront.mail import MailError, mailer
from storefront.orders.book import DEMO_INTENT_PREFIX, DEMO_LABEL, record_delivery, reference_of
from storefront.orders.delivery import delivery_from_order
from storefront.payments.gateway import PaymentRefused, gateway
from storefront.payments.reconcile import close_intent
from storefront.payments.settlement import message_from_intent, settle_succeeded

log = logging.getLogger(__name__)

# A walk runs this long a job (inside the job timeout), then hands on to the next job.
WALK_SECONDS = 25
RELEASE_BATCH = 200
# Cancels in flight at once: Stripe allows 100 requests a second in live mode (25 in test mode).
RELEASE_CONCURRENCY = 8


def take_authorisation(entry_id: uuid.UUID, intent: dict) -> str | None:
    """The entry's intent, as Stripe reports it: authorised (``requires_capture``) makes the entry
    ``entered``, or ``duplicate`` (its authorisation then cancelled). Returns the entry's status, or
    None for an intent that is not authorised. Raises PaymentError when Stripe cannot be asked
    for the card's fingerprint."""
    if intent.get("status") != "requires_capture":
        return None
    fingerprint = gateway().card_fingerprint(intent)
    with db.engine.begin() as conn:
        entry = draw.authorised(conn, entry_id, intent["id"], fingerprint, utcnow())
    if entry is None:
        return None
    if entry.status == EntryStatus.DUPLICATE:
        release_one(entry.id, entry.payment_intent_id)
    return entry.status


def authorise_demo(entry) -> str:
    """The demo gateway authorises an entry at once (no card, no money)."""
    with db.engine.begin() as conn:
        decided = draw.authorised(conn, entry.id, entry.payment_intent_id, None, utcnow())
    return decided.status


def release_one(entry_id: uuid.UUID, intent_id: str) -> str:
    """Cancel the authorisation of an entry that did not win, as a released hold's intent is closed
    (one found captured is settled: an entry without a unit is refunded in full); ``unreachable``
    leaves it to the sweep."""
    status = close_intent(intent_id)
    if status in ("canceled", "succeeded"):
        with db.engine.begin() as conn:
            draw.released(conn, entry_id, utcnow())
    return status


def release_authorisations(product_id: int | None = None) -> int:
    """Cancel what is still authorised for entries that did not win (lost, duplicate, withdrawn,
    forfeited), RELEASE_BATCH at most, RELEASE_CONCURRENCY at once: a draw of 40,000 entrants releases
    its losers' money within minutes, inside Stripe's rate limit. Returns how many were released."""
    with reading() as conn:
        due = draw.authorisations_to_release(conn, product_id, RELEASE_BATCH)
    if len(due) <= 1 or db.engine.dialect.name == "sqlite":  # SQLite has one writer: one at a time
        return sum(release_one(row.id, row.payment_intent_id) in ("canceled", "succeeded") for row in due)
    app = current_app._get_current_object()

    def release(row) -> bool:
        with app.app_context():
            return release_one(row.id, row.payment_intent_id) in ("canceled", "succeeded")

    with ThreadPoolExecutor(max_workers=RELEASE_CONCURRENCY, thread_name_prefix="release") as pool:
        return sum(pool.map(release, due))


def _capture_message(entry, intent: dict) -> dict:
    """The captured intent as the settlement reads it, naming the entry whatever the gateway echoed."""
    metadata = {**(intent.get("metadata") or {}), "drawEntryId": str(entry.id), "productId": str(entry.product_id),
                "userId": entry.user_id}
    intent = {**intent, "metadata": metadata, "currency": intent.get("currency") or entry.currency}
    return message_from_intent(intent, f"draw-capture-{entry.id}")


def _capture(entry) -> str:
    """Capture a selected entry's authorisation for its unit's price, once: the intent is read first,
    and one already captured is settled, not captured again. Won, or forfeited."""
    provider = gateway()
    key = f"entry-{entry.id}"
    if provider.demo:
        intent = provider.capture(entry.payment_intent_id, entry.amount, key)
    else:
        intent = provider.retrieve(entry.payment_intent_id)
        if intent["status"] == "requires_capture":
            try:
                intent = provider.capture(entry.payment_intent_id, entry.amount, key)
            except PaymentRefused as refused:
                log.info("capture of draw entry %s refused: %s", entry.id, refused)
                intent = provider.retrieve(entry.payment_intent_id)
    if intent["status"] == "succeeded":
        settle_succeeded(_capture_message(entry, intent), "draw")
        with reading() as conn:
            if draw.entry_by_id(conn, entry.id).status == EntryStatus.WON:
                return "won"
    with db.engine.begin() as conn:
        draw.forfeit(conn, entry, utcnow())
    log.info("draw entry %s forfeited its unit: its intent is %s", entry.id, intent["status"])
    return "forfeited"


def _selected_with_order(conn, product, claimed, now):
    """The next entry given a unit, its order made from the details it entered with (before the capture:
    whichever way the payment settles, the order knows where to send it)."""
    entry = draw.selected(conn, product) or draw.select_next(conn, product, claimed, now)
    if entry is not None:
        record_delivery(conn, "hold", entry, delivery_from_order(entry), entry.shop_url)
    return entry


def run_draw(product_id: int, part: int = 0) -> dict:
    """The draw of ``product_id``, from wherever it stands: rank, walk, release, tell. Safe to run
    twice and at once (one walker holds the lease; the other leaves). Runs WALK_SECONDS, then hands on
    to a job of its own. Raises PaymentError when Stripe cannot be reached (the job is retried, and
    the sweep starts another)."""
    walker = secrets.token_hex(8)
    deadline = time.monotonic() + WALK_SECONDS
    done = {"won": 0, "forfeited": 0}
    with db.engine.begin() as conn:
        now = utcnow()
        product = draw.draw_product(conn, product_id)
        if now < product.closes_at:
            return {"state": "open"}
        draw.draw_of(conn, product, now)
        claimed = draw.claim_walk(conn, product.id, walker, now)
        if claimed is None:
            return {"state": "walked_by_another"}
        if claimed.ranked_at is None:
            done["ranked"] = draw.rank(conn, product, now)

    def hand_on() -> dict:
        """This job's time is up: the next job (of this walker's name) goes on from where it stands."""
        jobs.enqueue("storefront.payments.draws.run_draw", product_id, part + 1,
                     job_id=f"draw-{product_id}-{walker}-{part + 1}")
        return {**done, "state": "continues"}

    try:
        while True:
            if time.monotonic() > deadline:
                return hand_on()
            with db.engine.begin() as conn:
                now = utcnow()
                claimed = draw.claim_walk(conn, product.id, walker, now)
                if claimed is None:
                    return {**done, "state": "lease_lost"}
                entry = None if claimed.walked_at else _selected_with_order(conn, product, claimed, now)
            if entry is None:
                break
            done[_capture(entry)] += 1
        # Then every other authorisation released, and every entrant told, batch by batch until none is
        # left (a batch that achieved nothing, Stripe or the mail server away, leaves the rest to the sweep).
        for name, batch in (("released", lambda: release_authorisations(product_id)),
                            ("notified", lambda: notify_entrants(product_id))):
            done[name] = 0
            while (did := batch()) > 0:
                done[name] += did
                if time.monotonic() > deadline:
                    return hand_on()
    finally:
        with db.engine.begin() as conn:  # the lease handed back, if it is still this walker's
            conn.execute(draw.draws.update().where(draw.draws.c.product_id == product.id,
                                                   draw.draws.c.walker == walker).values(walker=None, walker_until=None))
    log.info("draw of product %s: %s", product_id, done)
    return {**done, "state": "drawn"}


def draw_due_draws() -> int:
    """The sweep's part: a job for every draw closed with work left (the walk, a release, an email)."""
    with reading() as conn:
        due = draw.draws_due(conn, utcnow())
    # A job id a sweep interval: a job of a worker killed mid-walk keeps its id for a while (RQ sees it
    # started), and the next sweep's job, under a new id, takes the walk over once the lease has lapsed.
    interval = int(time.time() // current_app.config["STOREFRONT"].sweep_interval_seconds)
    for product_id in due:
        jobs.enqueue("storefront.payments.draws.run_draw", product_id, 0, job_id=f"draw-{product_id}-{interval}")
    return len(due)


_SUBJECTS = {
    EntryStatus.WON: "you won",
    EntryStatus.LOST: "not this time",
    EntryStatus.FORFEITED: "drawn, but your card could not be charged",
}


def outcome_message(entry, product, sender: str) -> EmailMessage:
    """The email that tells an entrant how the draw went for them."""
    demo = (entry.payment_intent_id or "").startswith(DEMO_INTENT_PREFIX)
    message = EmailMessage()
    message["From"], message["To"] = sender, entry.email
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<draw-entry-{entry.id}@{domain}>"
    message["Subject"] = (f"The draw for {product.name}: {_SUBJECTS[entry.status]}"
                          + (f" ({DEMO_LABEL})" if demo else ""))
    check = f"{(entry.shop_url or '/').rstrip('/')}/products/{product.id}/draw"
    hello = f"Hello {entry.ship_name}," if entry.ship_name else "Hello,"
    if entry.status == EntryStatus.WON:
        body = [f"You won a {product.labels.get(entry.won_product_id, product.name)} in the draw for {product.name}.",
                f"Your card was charged {money(entry.amount, entry.currency)}: order {reference_of(entry.id)}. "
                "Its confirmation follows, and we will tell you when it is on its way."]
    elif entry.status == EntryStatus.FORFEITED:
        body = [f"Your entry was drawn for the draw for {product.name}, but your card's authorisation could not be "
                "captured (declined, expired or cancelled), so the unit went to the next entrant.",
                "Nothing was charged."]
    else:
        body = [f"Your entry in the draw for {product.name} was not drawn this time.",
                f"Nothing was charged: the authorisation of {money(entry.authorised_amount, entry.currency)} on your "
                "card was cancelled. Most banks release it within minutes; some take a few days."]
    if demo:
        body.append(f"This was a demo entry ({DEMO_LABEL}): no card was involved.")
    lines = [hello, "", *body, "",
             f"Your entry: {entry.id}. Rank {entry.rank}." if entry.rank else f"Your entry: {entry.id}.",
             f"Anyone can check the draw (the seed, every rank and outcome): {check}", ""]
    message.set_content("\n".join(lines))
    return message


def notify_entrants(product_id: int) -> int:
    """Email each decided entrant its outcome, once (a mail server that is down: the sweep tries again)."""
    sender = current_app.config["STOREFRONT"].mail_from
    sent = 0
    with reading() as conn:
        product = draw.draw_product(conn, product_id)
        due = draw.to_notify(conn, product_id)
    for entry in due:
        try:
            mailer().send(outcome_message(entry, product, sender))
        except MailError as error:
            log.warning("draw outcome emails paused: %s; the sweep tries again", error)
            break
        with db.engine.begin() as conn:
            draw.notified(conn, entry.id, utcnow())
        sent += 1
    return sent
