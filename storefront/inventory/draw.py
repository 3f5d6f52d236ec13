"""A drop sold by a draw: entries for hours, then winners drawn by a seed anyone can check.

A product (and its options) with ``products.draw`` takes entries from its ``starts_at`` until
``entries_close``; it takes no holds and has no line (``DrawOnly`` in the grant step, 'draw_only'
in the hold function). When entries open, the first request to see the draw draws a secret 32-byte
seed and publishes its SHA-256 (as a queue's room does); each entry's rank key is
HMAC-SHA256(seed, its id's text) (``queue.rank_key``), computed as it enters and kept secret with
the seed.

An entry names a choice and, optionally, a second choice (options of the product), its delivery
details, and is paid for by a card *authorised* for one unit (``capture_method=manual``): it is
``pending_payment`` until Stripe says the card is authorised, then ``entered``. One entry per buyer
(the owner, the email, the delivery address: unique indexes on the counted entries), and per card
(Stripe's fingerprint, known only at authorisation: a second entry with the same card becomes
``duplicate``).

At the close the background side (``payments/draws.py``) draws: :func:`rank` numbers the entered
entries by rank key, lowest first, and marks the rest ``lost``; :func:`select_next` walks the
ranking one entry at a time, giving it a unit of its choice, else of its second choice, as a hold
(its id the entry's: the winner's order is a hold's order like any other); the caller captures
the authorisation and settles it (``won``), or :func:`forfeit` gives the unit back and the walk
goes on. Everything here runs in the caller's transaction; one walker at a time holds the draw's
lease (:func:`claim_walk`), so a crash anywhere leaves a state the next walker resumes.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from storefront.catalog.models import products
from storefront.clock import isoformat_z
from storefront.inventory import hold_rows
from storefront.inventory.models import Draw, DrawEntry, EntryStatus, HoldStatus
from storefront.inventory.queue import rank_key
from storefront.inventory.stock import give_back_units, lock_product, release_lapsed_holds, stock_levels, take_units
from storefront.owners import Owner

draws = Draw.__table__
entries = DrawEntry.__table__

# A walker's lease on a draw: renewed at every step, so a walker killed mid-walk leaves it to the
# next one within this long.
LEASE_SECONDS = 60
# A winner's hold lives this long: its capture comes at once; a walker that dies before it resumes
# within a lease, well inside this.
SELECTED_HOLD_SECONDS = 3600
# Statuses that count as a buyer's one entry.
COUNTED = (EntryStatus.PENDING_PAYMENT, EntryStatus.ENTERED, EntryStatus.WON, EntryStatus.LOST,
           EntryStatus.FORFEITED)


class NotADrawProduct(LookupError):
    """No such product, or it is archived."""


class NoDraw(LookupError):
    """The product is not sold by a draw."""


class DrawNotOpen(Exception):
    def __init__(self, opens_at: datetime):
        super().__init__(f"entries open at {opens_at}")
        self.opens_at = opens_at


class DrawClosed(Exception):
    def __init__(self, closed_at: datetime):
        super().__init__(f"entries closed at {closed_at}")
        self.closed_at = closed_at


class AlreadyEntered(Exception):
    """This buyer has an entry in the draw already: by ``field`` owner, email, address or card."""

    def __init__(self, field: str, entry_id: uuid.UUID | None = None):
        super().__init__(f"already entered (by {field})")
        self.field = field
        self.entry_id = entry_id


class NotAChoice(ValueError):
    """``field`` (productId or backupProductId) names nothing this draw sells."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class EntryIdTaken(ValueError):
    """The entry id the client drew is already some entry's."""


class NoEntry(LookupError):
    """The owner has no entry in this draw."""


@dataclass(frozen=True)
class DrawProduct:
    id: int  # the product (never an option): the draw's key
    name: str
    item_ids: tuple[int, ...]  # what a unit can be: the product, or each of its options
    labels: dict  # item id → its option's label (the product's name without options)
    prices: dict  # item id → (price, currency)
    opens_at: datetime
    closes_at: datetime
    paused: bool = False

    def amount_for(self, *item_ids: int) -> tuple[int, str]:
        """What an entry authorises: the dearest of its choices' prices (a win captures its own)."""
        price = max(self.prices[item][0] for item in item_ids)
        return price, self.prices[item_ids[0]][1]


_DRAW_PRODUCT = select(products.c.id, products.c.option_of, products.c.name, products.c.draw, products.c.starts_at,
                       products.c.entries_close, products.c.archived_at, products.c.paused,
                       products.c.price, products.c.currency).where(products.c.id == bindparam("product"))
_ITEMS = select(products.c.id, products.c.option_label, products.c.price, products.c.currency).where(
    products.c.option_of == bindparam("product"), products.c.archived_at.is_(None)).order_by(products.c.id)


def draw_product(conn: Connection, product_id: int) -> DrawProduct:
    """The draw a product (or one of its options) belongs to. Raises NotADrawProduct, NoDraw."""
    row = conn.execute(_DRAW_PRODUCT, {"product": product_id}).first()
    if row is not None and row.option_of is not None:
        row = conn.execute(_DRAW_PRODUCT, {"product": row.option_of}).first()
    if row is None or row.archived_at is not None:
        raise NotADrawProduct(product_id)
    if not row.draw:
        raise NoDraw(product_id)
    options = conn.execute(_ITEMS, {"product": row.id}).all()
    if options:
        labels = {option.id: option.option_label for option in options}
        prices = {option.id: (option.price, option.currency) for option in options}
    else:
        labels, prices = {row.id: row.name}, {row.id: (row.price, row.currency)}
    return DrawProduct(row.id, row.name, tuple(labels), labels, prices, row.starts_at, row.entries_close, row.paused)


def _insert(conn: Connection):
    return (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(draws)


def draw_of(conn: Connection, product: DrawProduct, now: datetime) -> Row | None:
    """The product's draw, made (its seed drawn) once entries are open; None before."""
    query = select(draws).where(draws.c.product_id == product.id)
    row = conn.execute(query).first()
    if row is None and now >= product.opens_at:
        seed = secrets.token_bytes(32)
        conn.execute(_insert(conn).values(
            product_id=product.id, seed=seed, seed_hash=hashlib.sha256(seed).hexdigest(), opened_at=now,
            walked_through=0).on_conflict_do_nothing(index_elements=["product_id"]))
        row = conn.execute(query).first()
    return row


def state_of(product: DrawProduct, draw: Row | None, now: datetime) -> str:
    """not_open, open (entries taken), closed (entries closed, the draw not yet published), drawn."""
    if draw is not None and draw.walked_at is not None:
        return "drawn"
    if now < product.opens_at:
        return "not_open"
    return "open" if now < product.closes_at else "closed"


@dataclass(frozen=True)
class Standing:
    """How the draw stands: the shared answer of ``GET /api/draws/<id>``."""
    product: DrawProduct
    state: str
    seed_hash: str | None
    seed: str | None  # revealed once drawn
    entries: int  # entered (authorised) so far, or ranked once drawn
    units: int

    def as_json(self) -> dict:
        return {"productId": self.product.id, "state": self.state, "opensAt": isoformat_z(self.product.opens_at),
                "closesAt": isoformat_z(self.product.closes_at), "seedHash": self.seed_hash, "seed": self.seed,
                "entries": self.entries, "units": self.units}


_ENTERED_COUNT = select(func.count()).select_from(entries).where(
    entries.c.product_id == bindparam("product"), entries.c.status.in_(
        [EntryStatus.ENTERED, EntryStatus.WON, EntryStatus.LOST, EntryStatus.FORFEITED]),
    entries.c.entered_at.is_not(None))


def standing(conn: Connection, product: DrawProduct, now: datetime) -> Standing:
    draw = draw_of(conn, product, now)
    state = state_of(product, draw, now)
    units = sum(max(stock.available, 0) for stock in stock_levels(conn, product.item_ids, now).values())
    if state == "drawn":  # what the draw had to give: what it sold, and what was left
        units += conn.execute(select(func.count()).select_from(entries).where(
            entries.c.product_id == product.id, entries.c.status == EntryStatus.WON)).scalar_one()
    return Standing(product, state, draw.seed_hash if draw is not None else None,
                    draw.seed.hex() if state == "drawn" else None,
                    conn.execute(_ENTERED_COUNT, {"product": product.id}).scalar_one(), units)


_OWN = select(entries).where(entries.c.product_id == bindparam("product"), entries.c.user_id == bindparam("visitor"),
                             entries.c.browser_id == bindparam("browser")).order_by(
    entries.c.status.in_(COUNTED).desc(), entries.c.created_at.desc()).limit(1)


def own_entry(conn: Connection, product: DrawProduct, owner: Owner) -> Row | None:
    """The owner's entry: the one that counts, or else the latest (withdrawn, duplicate)."""
    return conn.execute(_OWN, {"product": product.id, "visitor": owner.visitor_id,
                               "browser": owner.browser_id}).first()


def entry_by_id(conn: Connection, entry_id: uuid.UUID) -> Row | None:
    return conn.execute(select(entries).where(entries.c.id == entry_id)).first()


def _counted(product_id: int, matches):
    """The id of an entry of the draw that counts as a buyer's one entry and ``matches``, if any."""
    return select(entries.c.id).where(entries.c.product_id == product_id, matches,
                                      entries.c.status.in_(COUNTED)).limit(1)


_UNIQUE_FIELDS = {"uq_draw_entries_owner": "owner", "uq_draw_entries_email": "email",
                  "uq_draw_entries_address": "address", "uq_draw_entries_card": "card"}


def enter(conn: Connection, product: DrawProduct, owner: Owner, address: str, now: datetime, *, choice: int,
          backup: int | None, delivery: dict, entry_id: uuid.UUID | None = None, shop_url: str | None = None) -> Row:
    """The owner's new entry, ``pending_payment`` until its card is authorised.

    ``delivery``: the order's delivery columns (orders/delivery.py's, with the buyer's keys). Raises
    DrawNotOpen, DrawClosed, NotAChoice, AlreadyEntered (the owner, the email or the address has an
    entry already), EntryIdTaken."""
    if now < product.opens_at:
        raise DrawNotOpen(product.opens_at)
    if now >= product.closes_at:
        raise DrawClosed(product.closes_at)
    if choice not in product.item_ids:
        raise NotAChoice("productId", "Choose one of this drop's sizes." if len(product.item_ids) > 1
                         else "This draw is for another product.")
    if backup is not None and (backup not in product.item_ids or backup == choice):
        raise NotAChoice("backupProductId", "A second choice is another of this drop's sizes, or none.")
    draw = draw_of(conn, product, now)
    checks = (("owner", and_(entries.c.user_id == owner.visitor_id, entries.c.browser_id == owner.browser_id)),
              ("email", entries.c.buyer_email == delivery.get("buyer_email")),
              ("address", entries.c.buyer_address == delivery.get("buyer_address")))
    for field, matches in checks:
        if (found := conn.execute(_counted(product.id, matches)).scalar()):
            raise AlreadyEntered(field, found if field == "owner" else None)
    entry_id = entry_id or uuid.uuid4()
    if entry_by_id(conn, entry_id) is not None:
        raise EntryIdTaken(entry_id)
    amount, currency = product.amount_for(*[item for item in (choice, backup) if item is not None])
    values = {
        "id": entry_id, "product_id": product.id, "choice_id": choice, "backup_id": backup,
        "user_id": owner.visitor_id, "browser_id": owner.browser_id, "client_address": address,
        "status": EntryStatus.PENDING_PAYMENT.value, "rank_key": rank_key(draw.seed, entry_id),
        "amount": amount, "authorised_amount": amount, "currency": currency, "created_at": now,
        "shop_url": shop_url[:200] if shop_url else None, **delivery,
    }
    try:
        with conn.begin_nested():  # a racing twin's insert: named by the index it broke, nothing else undone
            return conn.execute(insert(entries).returning(*entries.c), values).one()
    except IntegrityError as clash:
        for index, field in _UNIQUE_FIELDS.items():
            if index in str(clash.orig):
                raise AlreadyEntered(field) from None
        if "draw_entries.id" in str(clash.orig) or "draw_entries_pkey" in str(clash.orig):
            raise EntryIdTaken(entry_id) from None
        raise


def remember_intent(conn: Connection, entry_id: uuid.UUID, intent_id: str) -> None:
    conn.execute(update(entries).where(entries.c.id == entry_id, entries.c.payment_intent_id.is_(None))
                 .values(payment_intent_id=intent_id))


def remember_refund(conn: Connection, entry_id: uuid.UUID, refund_id: str) -> None:
    conn.execute(update(entries).where(entries.c.id == entry_id).values(refund_id=refund_id))


def authorised(conn: Connection, entry_id: uuid.UUID, intent_id: str, fingerprint: str | None,
               now: datetime) -> Row | None:
    """Stripe says the entry's card is authorised: a ``pending_payment`` entry is ``entered``, or
    ``duplicate`` when an entry before it used the same card (its authorisation is then the caller's
    to cancel). Late (the draw already ranked) or repeated, it changes nothing. Returns the entry."""
    entry = conn.execute(select(entries).where(entries.c.id == entry_id).with_for_update()).first()
    if entry is None or entry.payment_intent_id != intent_id or entry.status != EntryStatus.PENDING_PAYMENT:
        return entry
    ranked = conn.execute(select(draws.c.ranked_at).where(draws.c.product_id == entry.product_id)).scalar()
    if ranked is not None:
        return entry  # the draw ranked without it: it is lost, and its authorisation released
    if fingerprint and conn.execute(_counted(entry.product_id, (entries.c.card_fingerprint == fingerprint)
                                             & (entries.c.id != entry_id))).first() is not None:
        status = EntryStatus.DUPLICATE
    else:
        status = EntryStatus.ENTERED
    conn.execute(update(entries).where(entries.c.id == entry_id).values(
        status=status.value, card_fingerprint=fingerprint if status == EntryStatus.ENTERED else None,
        entered_at=now if status == EntryStatus.ENTERED else None, decided_at=now if status != EntryStatus.ENTERED else None))
    return entry_by_id(conn, entry_id)


def withdraw(conn: Connection, product: DrawProduct, owner: Owner, now: datetime) -> Row:
    """The owner withdraws its entry before the close (its authorisation is then the caller's to
    cancel). Raises NoEntry, DrawClosed."""
    entry = own_entry(conn, product, owner)
    if entry is None or entry.status not in (EntryStatus.PENDING_PAYMENT, EntryStatus.ENTERED):
        if entry is not None and entry.status == EntryStatus.WITHDRAWN:
            return entry
        if entry is None:
            raise NoEntry(product.id)
        raise DrawClosed(product.closes_at)
    if now >= product.closes_at:
        raise DrawClosed(product.closes_at)
    conn.execute(update(entries).where(entries.c.id == entry.id, entries.c.status.in_(
        [EntryStatus.PENDING_PAYMENT, EntryStatus.ENTERED])).values(status=EntryStatus.WITHDRAWN.value, decided_at=now))
    return entry_by_id(conn, entry.id)


def cancelled_by_stripe(conn: Connection, entry_id: uuid.UUID, now: datetime) -> str | None:
    """``payment_intent.canceled``: an entry not yet drawn is ``withdrawn``, its authorisation gone. A
    selected one is left to the walk (its capture fails, and it forfeits). Returns its status."""
    entry = conn.execute(select(entries).where(entries.c.id == entry_id).with_for_update()).first()
    if entry is None:
        return None
    if entry.status in (EntryStatus.PENDING_PAYMENT, EntryStatus.ENTERED) and entry.selected_at is None:
        conn.execute(update(entries).where(entries.c.id == entry_id).values(
            status=EntryStatus.WITHDRAWN.value, decided_at=now, released_at=now))
        return EntryStatus.WITHDRAWN.value
    if entry.status != EntryStatus.WON:
        conn.execute(update(entries).where(entries.c.id == entry_id, entries.c.released_at.is_(None))
                     .values(released_at=now))
    return entry.status


# The draw itself.

def claim_walk(conn: Connection, product_id: int, walker: str, now: datetime) -> Row | None:
    """Take (or renew) the draw's lease for ``walker``: the draw's row, or None while another walker's
    lease runs."""
    query = select(draws).where(draws.c.product_id == product_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    else:  # SQLite: a write takes its one writer's lock first
        conn.execute(update(draws).where(draws.c.product_id == product_id).values(product_id=draws.c.product_id))
    draw = conn.execute(query).first()
    if draw is None or (draw.walker not in (None, walker) and draw.walker_until is not None and draw.walker_until > now):
        return None
    conn.execute(update(draws).where(draws.c.product_id == product_id).values(
        walker=walker, walker_until=now + timedelta(seconds=LEASE_SECONDS)))
    return conn.execute(select(draws).where(draws.c.product_id == product_id)).one()


# One statement numbers every entered entry by its rank key, lowest first (bytes compare as the
# contract's hex does); the entry id breaks a tie nobody will see.
_RANK = text(
    "UPDATE draw_entries SET rank = ranked.rank"
    " FROM (SELECT id, row_number() OVER (ORDER BY rank_key, id) AS rank"
    "       FROM draw_entries WHERE product_id = :product AND status = 'entered') AS ranked"
    " WHERE draw_entries.id = ranked.id"
)


def rank(conn: Connection, product: DrawProduct, now: datetime) -> int:
    """At the close: every entered entry ranked; every entry still waiting for its card is ``lost``
    (its intent the caller's to cancel). The caller holds the draw's lease. Returns the entries ranked."""
    ranked = conn.execute(_RANK, {"product": product.id}).rowcount
    conn.execute(update(entries).where(entries.c.product_id == product.id,
                                       entries.c.status == EntryStatus.PENDING_PAYMENT)
                 .values(status=EntryStatus.LOST.value, decided_at=now))
    conn.execute(update(draws).where(draws.c.product_id == product.id).values(ranked_at=now))
    return ranked


_SELECTED = select(entries).where(entries.c.product_id == bindparam("product"),
                                  entries.c.status == EntryStatus.ENTERED, entries.c.selected_at.is_not(None))
_NEXT = select(entries).where(entries.c.product_id == bindparam("product"), entries.c.status == EntryStatus.ENTERED,
                              entries.c.rank > bindparam("after")).order_by(entries.c.rank).limit(1)


def selected(conn: Connection, product: DrawProduct) -> Row | None:
    """An entry given a unit whose capture is not decided yet: the walk's first business, always."""
    return conn.execute(_SELECTED, {"product": product.id}).first()


def select_next(conn: Connection, product: DrawProduct, draw: Row, now: datetime) -> Row | None:
    """The next ranked entry given a unit (its choice, else its second choice) as a PENDING hold whose id
    is the entry's, or ``lost`` when neither is left; once no unit is left at all, every entry still
    waiting is ``lost`` at once. Returns the selected entry, or None when the walk is over. The caller
    holds the lease, and captures the selected entry's authorisation after committing."""
    after = draw.walked_through
    while (entry := conn.execute(_NEXT, {"product": product.id, "after": after}).first()) is not None:
        after = entry.rank
        conn.execute(update(draws).where(draws.c.product_id == product.id).values(walked_through=after))
        for item in sorted(product.item_ids):
            lock_product(conn, item)
        for item in (entry.choice_id, entry.backup_id):
            if item is None:
                continue
            release_lapsed_holds(conn, item, now)
            bucket = take_units(conn, item, 1)
            if bucket is None:
                continue
            price, currency = product.prices[item]
            hold_rows.insert_hold(conn, {
                "id": entry.id, "product_id": item, "bucket": bucket, "user_id": entry.user_id,
                "browser_id": entry.browser_id, "client_address": entry.client_address, "quantity": 1,
                "amount": price, "currency": currency, "status": HoldStatus.PENDING.value,
                "expires_at": now + timedelta(seconds=SELECTED_HOLD_SECONDS),
                "payment_intent_id": entry.payment_intent_id, "created_at": now, "updated_at": now})
            conn.execute(update(entries).where(entries.c.id == entry.id).values(
                selected_at=now, won_product_id=item, amount=price))
            return entry_by_id(conn, entry.id)
        conn.execute(update(entries).where(entries.c.id == entry.id).values(status=EntryStatus.LOST.value,
                                                                              decided_at=now))
        if sum(max(stock.available, 0) for stock in stock_levels(conn, product.item_ids, now).values()) == 0:
            break
    _lose_the_rest(conn, product, now)
    conn.execute(update(draws).where(draws.c.product_id == product.id).values(walked_at=now))
    return None


def _lose_the_rest(conn: Connection, product: DrawProduct, now: datetime) -> None:
    conn.execute(update(entries).where(entries.c.product_id == product.id, entries.c.status == EntryStatus.ENTERED,
                                       entries.c.selected_at.is_(None))
                 .values(status=EntryStatus.LOST.value, decided_at=now))


def won(conn: Connection, entry_id: uuid.UUID, now: datetime) -> None:
    """Its capture settled and its hold sold: the entry won (the settlement's transaction)."""
    conn.execute(update(entries).where(entries.c.id == entry_id, entries.c.status == EntryStatus.ENTERED)
                 .values(status=EntryStatus.WON.value, decided_at=now))


def forfeit(conn: Connection, entry: Row, now: datetime) -> None:
    """Its capture failed (declined, expired, cancelled): the unit goes back for the next rank, and the
    entry is ``forfeited`` (what is left of its authorisation released by the caller)."""
    hold = conn.execute(select(hold_rows.holds).where(hold_rows.holds.c.id == entry.id)).first()
    if hold is not None and hold.status == HoldStatus.PENDING:
        lock_product(conn, hold.product_id)
        hold_rows.set_status(conn, hold.id, HoldStatus.CANCELLED, now, payment_released_at=now)
        give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)
    conn.execute(update(entries).where(entries.c.id == entry.id, entries.c.status == EntryStatus.ENTERED)
                 .values(status=EntryStatus.FORFEITED.value, decided_at=now))


_TO_RELEASE = select(entries.c.id, entries.c.payment_intent_id, entries.c.status, entries.c.authorised_amount,
                     entries.c.currency).where(
    entries.c.status.in_([EntryStatus.LOST, EntryStatus.DUPLICATE, EntryStatus.WITHDRAWN, EntryStatus.FORFEITED]),
    entries.c.released_at.is_(None), entries.c.payment_intent_id.is_not(None))


def authorisations_to_release(conn: Connection, product_id: int | None = None, limit: int = 100) -> list[Row]:
    """Entries that did not win whose authorisation is not known to be released yet."""
    query = _TO_RELEASE if product_id is None else _TO_RELEASE.where(entries.c.product_id == product_id)
    return conn.execute(query.limit(limit)).all()


def released(conn: Connection, entry_id: uuid.UUID, now: datetime) -> None:
    conn.execute(update(entries).where(entries.c.id == entry_id).values(released_at=now))


_UNNOTIFIED = select(entries).where(
    entries.c.status.in_([EntryStatus.WON, EntryStatus.LOST, EntryStatus.FORFEITED]), entries.c.notified_at.is_(None))


def to_notify(conn: Connection, product_id: int, limit: int = 200) -> list[Row]:
    """Decided entries of a drawn draw whose outcome has not been emailed yet."""
    return conn.execute(_UNNOTIFIED.where(entries.c.product_id == product_id).limit(limit)).all()


def notified(conn: Connection, entry_id: uuid.UUID, now: datetime) -> None:
    conn.execute(update(entries).where(entries.c.id == entry_id).values(notified_at=now))


_DUE = select(products.c.id).join(draws, draws.c.product_id == products.c.id, isouter=True).where(
    products.c.draw, products.c.option_of.is_(None), products.c.archived_at.is_(None),
    products.c.entries_close <= bindparam("now"),
    or_(draws.c.walked_at.is_(None),
        draws.c.product_id.in_(select(entries.c.product_id).where(
            or_(entries.c.notified_at.is_(None) & entries.c.status.in_(
                [EntryStatus.WON, EntryStatus.LOST, EntryStatus.FORFEITED]),
                entries.c.released_at.is_(None) & entries.c.payment_intent_id.is_not(None) & entries.c.status.in_(
                    [EntryStatus.LOST, EntryStatus.DUPLICATE, EntryStatus.WITHDRAWN, EntryStatus.FORFEITED]))))))


def draws_due(conn: Connection, now: datetime) -> list[int]:
    """Draws whose entries have closed with work left: the walk, a release, an email."""
    return list(conn.execute(_DUE, {"now": now}).scalars())


@dataclass(frozen=True)
class Result:
    rank: int
    entry_id: uuid.UUID
    outcome: str  # won, lost, forfeited
    product_id: int | None  # what it won (or was given and forfeited); None for a loss


def results(conn: Connection, product: DrawProduct) -> list[Result]:
    """Every ranked entry, in rank order, with its outcome: the published results."""
    rows = conn.execute(select(entries.c.rank, entries.c.id, entries.c.status, entries.c.won_product_id)
                        .where(entries.c.product_id == product.id, entries.c.rank.is_not(None))
                        .order_by(entries.c.rank)).all()
    return [Result(row.rank, row.id, row.status, row.won_product_id) for row in rows]


def entries_over_time(conn: Connection, product: DrawProduct) -> list[tuple[datetime, int, int]]:
    """(entered at, the size chosen) per entered entry, oldest first: the live view's entries per size over time."""
    return conn.execute(select(entries.c.entered_at, entries.c.choice_id).where(
        entries.c.product_id == product.id, entries.c.entered_at.is_not(None)).order_by(entries.c.entered_at)).all()


def outcome_counts(conn: Connection, product: DrawProduct) -> dict[str, int]:
    rows = conn.execute(select(entries.c.status, func.count()).where(entries.c.product_id == product.id)
                        .group_by(entries.c.status)).all()
    return {status: count for status, count in rows}
