"""A drop's waiting room: who may hold a queued product, in a random order fixed in advance.

A product with a start time may be *queued* (``products.queued``; its options share its
queue). Its room opens QUEUE_OPENS_BEFORE_SECONDS before the start, when the first request
to see it draws a secret 32-byte seed and publishes its SHA-256. Owners join (one place
each, QUEUE_ENTRIES_PER_ADDRESS places per client address); each entry's rank key is
HMAC-SHA256(seed, its id's text), computed as it joins and kept secret with the seed. At the
start the seed is revealed and one statement numbers every entry made so far by its rank key,
lowest first: an order nobody could choose, and anyone can check. Later joiners go behind,
in the order they come.

Admission (:func:`advance`) lets places in, in order, while the admitted places that have not
held yet are fewer than the units available (the product's and its options', lapsed holds
counting as free); each admitted place has QUEUE_PASS_SECONDS to hold. A hold or a checkout on
a queued product spends its owner's pass (:func:`use_pass`, in the grant step, and in the hold
function on PostgreSQL), so one admission makes one hold. A lapsed hold, a released one or an
unused pass leaves room, and the next step admits the next place. Admission runs when a page
or a script asks how the line stands (at most once a second per product, and never waiting for
another step: ``SKIP LOCKED``), when someone joins after the start, and every sweep.

Everything lives in PostgreSQL (the source of truth), so every web host and worker agrees on
the order and on admissions. Locks: an owner's join takes its visitor id's and its address's
lock; the room's row is locked for ranking, for admitting and for a place behind the start.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row

from storefront.catalog.models import products
from storefront.clock import UTCDateTime, isoformat_z
from storefront.inventory.hold_rows import live
from storefront.inventory.models import Queue, QueueEntry
from storefront.inventory.stock import buckets, holds, stock_levels, unit_counts, units_available
from storefront.locks import KeySpace, lock_key
from storefront.owners import Owner, address_block

rooms = Queue.__table__
entries = QueueEntry.__table__

# How often a poll may run an admission step for a product; the sweep and a join after the start
# run one whenever they come.
ADVANCE_EVERY_SECONDS = 1


class NoQueue(LookupError):
    """The product takes holds without a queue."""


class NotAQueuedProduct(LookupError):
    """No such product, or it is archived."""


class QueueNotOpen(Exception):
    def __init__(self, opens_at: datetime):
        super().__init__(f"the waiting room opens at {opens_at}")
        self.opens_at = opens_at


class QueueSoldOut(Exception):
    """Nothing left and nothing held: there is nothing to wait for."""


class QueueClosed(Exception):
    """Its owner closed the line on the day: nobody joins it, and nobody more is let in."""


class TooManyEntries(Exception):
    def __init__(self, limit: int):
        super().__init__(f"{limit} entries from this address already")
        self.limit = limit


class NotAdmitted(Exception):
    """A hold on a queued product without a live pass: ``position`` None when the owner has no place."""

    def __init__(self, queue_of: int, position: int | None, admitted_through: int):
        super().__init__(f"not admitted to the queue of product {queue_of}")
        self.queue_of = queue_of
        self.position = position
        self.admitted_through = admitted_through


@dataclass(frozen=True)
class QueueSettings:
    opens_before_seconds: int
    pass_seconds: int
    entries_per_address: int
    block_factor: int = 0  # IPV6_BLOCK_FACTOR: an IPv6 /48's places, as a whole; 0: not counted

    @classmethod
    def of(cls, settings) -> "QueueSettings":
        return cls(settings.queue_opens_before_seconds, settings.queue_pass_seconds,
                   settings.queue_entries_per_address, settings.ipv6_block_factor)


@dataclass(frozen=True)
class QueuedProduct:
    id: int  # the product (never an option): the queue's key
    item_ids: tuple[int, ...]  # what its units are counted over: the product, or its options
    starts_at: datetime
    opens_at: datetime
    paused: bool = False  # its owner paused the sale: nobody joins its line meanwhile


@dataclass(frozen=True)
class Standing:
    """How the line stands: the shared answer of ``GET /api/queue/<id>``."""
    product: QueuedProduct
    state: str  # not_open, open, admitting, sold_out, closed
    seed_hash: str | None
    seed: str | None  # revealed from the start on
    length: int
    admitted_through: int
    available: int
    admitted_last_minute: int

    def as_json(self) -> dict:
        return {
            "productId": self.product.id, "state": self.state, "opensAt": isoformat_z(self.product.opens_at),
            "startsAt": isoformat_z(self.product.starts_at), "seedHash": self.seed_hash, "seed": self.seed,
            "length": self.length, "admittedThrough": self.admitted_through, "available": self.available,
            "admittedLastMinute": self.admitted_last_minute,
        }


@dataclass(frozen=True)
class Place:
    """One owner's place: the private answer of ``GET /api/queue/<id>/entries/mine``."""
    entry_id: uuid.UUID
    status: str  # waiting, admitted, held, expired, closed
    position: int | None
    ahead: int | None
    pass_expires_at: datetime | None
    joined_at: datetime

    def as_json(self) -> dict:
        return {"entryId": str(self.entry_id), "status": self.status, "position": self.position,
                "ahead": self.ahead,
                "passExpiresAt": isoformat_z(self.pass_expires_at) if self.pass_expires_at else None}


def rank_key(seed: bytes, entry_id: uuid.UUID) -> bytes:
    """The contract's order: HMAC-SHA256 with the seed as key over the entry id's text."""
    return hmac.new(seed, str(entry_id).encode(), hashlib.sha256).digest()


_QUEUED = select(products.c.id, products.c.option_of, products.c.starts_at, products.c.queued,
                 products.c.archived_at, products.c.paused).where(products.c.id == bindparam("product"))
_ITEMS = select(products.c.id).where(products.c.option_of == bindparam("product"),
                                     products.c.archived_at.is_(None))


def queued_product(conn: Connection, product_id: int, opens_before_seconds: int) -> QueuedProduct:
    """The queue a product (or one of its options) belongs to. Raises NotAQueuedProduct, NoQueue."""
    row = conn.execute(_QUEUED, {"product": product_id}).first()
    if row is not None and row.option_of is not None:
        row = conn.execute(_QUEUED, {"product": row.option_of}).first()
    if row is None or row.archived_at is not None:
        raise NotAQueuedProduct(product_id)
    if not row.queued or row.starts_at is None:
        raise NoQueue(product_id)
    options = conn.execute(_ITEMS, {"product": row.id}).scalars().all()
    return QueuedProduct(row.id, tuple(options) or (row.id,), row.starts_at,
                         row.starts_at - timedelta(seconds=opens_before_seconds), row.paused)


def _insert_ignoring_duplicates(conn: Connection):
    return (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(rooms)


def room_of(conn: Connection, product: QueuedProduct, now: datetime, *, lock: bool = False,
            skip_locked: bool = False) -> Row | None:
    """The product's room, made (its seed drawn) if it is open and nobody made it yet; None before it
    opens, and, with ``skip_locked``, while another transaction has it locked (it exists then)."""
    query = select(rooms).where(rooms.c.product_id == product.id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=skip_locked)
    elif lock:
        # SQLite ignores FOR UPDATE: a write takes its one writer's lock first, so that two admission
        # steps (two gunicorn workers) never read the same room and admit past the stock.
        conn.execute(update(rooms).where(rooms.c.product_id == product.id).values(product_id=rooms.c.product_id))
    room = conn.execute(query).first()
    if room is None and now >= product.opens_at and not skip_locked:
        seed = secrets.token_bytes(32)
        conn.execute(_insert_ignoring_duplicates(conn).values(
            product_id=product.id, seed=seed, seed_hash=hashlib.sha256(seed).hexdigest(), opened_at=now,
            last_position=0, admitted_through=0).on_conflict_do_nothing(index_elements=["product_id"]))
        room = conn.execute(query).first()
    return room


def room_as_it_is(conn: Connection, product: QueuedProduct) -> Row | None:
    """The room's row, read without a lock and made by no one: None before anybody opened it."""
    return conn.execute(select(rooms).where(rooms.c.product_id == product.id)).first()


def sold_out(conn: Connection, product: QueuedProduct) -> bool:
    """Every unit sold: nothing free and nothing held, so nothing will come back."""
    counts = unit_counts(conn, product.item_ids).values()
    return sum(count.total - count.sold for count in counts) <= 0


def units_left(conn: Connection, product: QueuedProduct, now: datetime) -> int:
    """What the queued product and its options have left to hold now, together."""
    return sum(max(stock.available, 0) for stock in stock_levels(conn, product.item_ids, now).values())


_CLOSED = select(rooms.c.closed_at).where(rooms.c.product_id == bindparam("product"))
_OWN_ENTRY = select(entries).where(entries.c.product_id == bindparam("product"),
                                   entries.c.user_id == bindparam("visitor"),
                                   entries.c.browser_id == bindparam("browser"), entries.c.left_at.is_(None))
_FROM_ADDRESS = select(func.count()).select_from(entries).where(
    entries.c.product_id == bindparam("product"), entries.c.client_address == bindparam("address"))
_FROM_BLOCK = select(func.count()).select_from(entries).where(
    entries.c.product_id == bindparam("product"), entries.c.client_block == bindparam("block"))


class EntryIdTaken(ValueError):
    """The entry id the client drew is already some place's."""


def own_entry(conn: Connection, product: QueuedProduct, owner: Owner) -> Row | None:
    """The owner's current place (not one it left to join again)."""
    return conn.execute(_OWN_ENTRY, {"product": product.id, "visitor": owner.visitor_id,
                                     "browser": owner.browser_id}).first()


def turn_over(conn: Connection, product: QueuedProduct, entry: Row, now: datetime) -> bool:
    """The place's turn is over and left nothing: its pass ran out before it held, or the hold it
    made lapsed or was released. Its status is ``expired`` and its owner may join again, behind
    everyone. Read from live state: a hold that lapsed a second ago counts as lapsed now."""
    if entry.admitted_at is None:
        return False
    if entry.held_at is None:
        return entry.pass_expires_at <= now
    return conn.execute(select(holds.c.id).where(
        holds.c.user_id == entry.user_id, holds.c.browser_id == entry.browser_id,
        holds.c.product_id.in_(product.item_ids), holds.c.created_at >= entry.held_at - timedelta(seconds=1),
        (holds.c.status == "COMPLETED") | live(now),
    ).limit(1)).first() is None


def join(conn: Connection, product: QueuedProduct, owner: Owner, address: str, now: datetime,
         settings: QueueSettings, entry_id: uuid.UUID | None = None) -> tuple[Row, bool]:
    """The owner's place in the queue, made if it has none: (entry, created).

    ``entry_id`` is the id the client drew (the page draws one with ``crypto.randomUUID()``), so
    that nobody, the shop included, chooses where an entry ranks; without one the shop draws it.
    An owner whose pass lapsed unused joins again behind everyone, while anything is left: its
    old place is marked left and stays in the published list.

    Raises QueueNotOpen before the room opens, QueueSoldOut once nothing is left to wait for,
    TooManyEntries past the address's places (or its IPv6 /48's), EntryIdTaken. The caller has
    taken the door's price (the proof of work) in the same transaction.
    """
    if now < product.opens_at:
        raise QueueNotOpen(product.opens_at)
    lock_key(conn, KeySpace.LINE_JOINER, owner.visitor_id)
    existing = own_entry(conn, product, owner)
    if existing is not None and not turn_over(conn, product, existing, now):
        return existing, False
    if now >= product.starts_at and sold_out(conn, product):
        raise QueueSoldOut(product.id)
    if conn.execute(_CLOSED, {"product": product.id}).scalar() is not None:
        raise QueueClosed(product.id)
    block = address_block(address) if settings.block_factor else None
    lock_key(conn, KeySpace.LINE_ADDRESS, address)
    if block is not None:
        lock_key(conn, KeySpace.LINE_ADDRESS, block)
    if conn.execute(_FROM_ADDRESS, {"product": product.id, "address": address}).scalar_one() \
            >= settings.entries_per_address:
        raise TooManyEntries(settings.entries_per_address)
    if block is not None and conn.execute(_FROM_BLOCK, {"product": product.id, "block": block}).scalar_one() \
            >= settings.entries_per_address * settings.block_factor:
        raise TooManyEntries(settings.entries_per_address * settings.block_factor)
    entry_id = entry_id or uuid.uuid4()
    if conn.execute(select(entries.c.id).where(entries.c.id == entry_id)).first() is not None:
        raise EntryIdTaken(entry_id)
    if existing is not None:
        conn.execute(update(entries).where(entries.c.id == existing.id).values(left_at=now))
    room = room_of(conn, product, now, lock=now >= product.starts_at)
    position = None
    if now >= product.starts_at:  # behind everyone ranked, in the order of arrival (under the room's lock)
        if room.ranked_at is None:
            room = _rank(conn, product, now)
        position = room.last_position + 1
        conn.execute(update(rooms).where(rooms.c.product_id == product.id).values(last_position=position))
    entry = conn.execute(insert(entries).returning(*entries.c), {
        "id": entry_id, "product_id": product.id, "user_id": owner.visitor_id, "browser_id": owner.browser_id,
        "client_address": address, "client_block": block, "joined_at": now, "rank_key": rank_key(room.seed, entry_id),
        "position": position,
    }).one()
    if position is not None:
        advance(conn, product, now, settings.pass_seconds, room=room)
        entry = own_entry(conn, product, owner)
    return entry, True


# One statement numbers every entry made before the start by its rank key (bytes compare as the
# contract's hex does), whatever their number, behind the places already given (none, the first
# time); the entry id breaks a tie nobody will see.
_RANK = text(
    "UPDATE queue_entries SET position = :behind + ranked.position"
    " FROM (SELECT id, row_number() OVER (ORDER BY rank_key, id) AS position"
    "       FROM queue_entries WHERE product_id = :product AND position IS NULL) AS ranked"
    " WHERE queue_entries.id = ranked.id"
)
_UNRANKED = select(entries.c.id).where(entries.c.product_id == bindparam("product"), entries.c.position.is_(None))


def _rank(conn: Connection, product: QueuedProduct, now: datetime) -> Row:
    """Place every entry made before the start; the caller holds the room's lock. Run again, it
    places a straggler (a join whose host's clock said "before the start" and which committed after
    the ranking) behind everyone placed so far."""
    behind = conn.execute(select(rooms.c.last_position).where(rooms.c.product_id == product.id)).scalar_one()
    ranked = conn.execute(_RANK, {"product": product.id, "behind": behind}).rowcount
    conn.execute(update(rooms).where(rooms.c.product_id == product.id).values(
        ranked_at=func.coalesce(rooms.c.ranked_at, now), ranked_places=func.coalesce(rooms.c.ranked_places, ranked),
        last_position=rooms.c.last_position + ranked))
    return conn.execute(select(rooms).where(rooms.c.product_id == product.id)).one()


_now = bindparam("now", type_=UTCDateTime)
_WAITING_FOR_A_HOLD = select(func.count()).select_from(entries).where(
    entries.c.product_id == bindparam("product"), entries.c.admitted_at.is_not(None),
    entries.c.held_at.is_(None), entries.c.pass_expires_at > _now)


def advance(conn: Connection, product: QueuedProduct, now: datetime, pass_seconds: int, *,
            room: Row | None = None, skip_locked: bool = False) -> Row | None:
    """Rank at the start, then admit places in order while the admitted places yet to hold are
    fewer than the units available. Returns the room (None before it opens, or when
    ``skip_locked`` and another step has it)."""
    if room is None:
        room = room_of(conn, product, now, lock=True, skip_locked=skip_locked)
    if room is None or now < product.starts_at:
        return room
    if room.ranked_at is None or conn.execute(_UNRANKED.limit(1), {"product": product.id}).first() is not None:
        room = _rank(conn, product, now)
    if room.closed_at is not None:  # its owner closed it: nobody more is let in
        return room
    # The units and the passes yet to be spent in one statement: one snapshot, so that a hold committed
    # between two reads (a unit gone, a pass spent) can never make room for one place too many.
    room_for = conn.execute(select(units_available(product.item_ids) - _WAITING_FOR_A_HOLD.scalar_subquery()),
                            {"product": product.id, "now": now}).scalar_one()
    values = {"advanced_at": now}
    if room_for > 0:
        next_places = (select(entries.c.id).where(entries.c.product_id == product.id, entries.c.admitted_at.is_(None),
                                                  entries.c.position.is_not(None))
                       .order_by(entries.c.position).limit(room_for))
        admitted = conn.execute(
            update(entries).where(entries.c.id.in_(next_places.scalar_subquery()))
            .values(admitted_at=now, pass_expires_at=now + timedelta(seconds=pass_seconds))
            .returning(entries.c.position)).scalars().all()
        if admitted:
            values["admitted_through"] = max(max(admitted), room.admitted_through)
    conn.execute(update(rooms).where(rooms.c.product_id == product.id).values(**values))
    return conn.execute(select(rooms).where(rooms.c.product_id == product.id)).one()


@dataclass(frozen=True)
class PublishedPlace:
    position: int
    entry_id: uuid.UUID
    joined: str  # "before": ranked at the start by HMAC-SHA256(seed, entry id); "after": in order of arrival


def published_places(conn: Connection, product: QueuedProduct) -> list[PublishedPlace]:
    """Every place given, in position order, as ``entries.csv`` publishes it from the start: with the
    revealed seed anyone can recompute the order of the places marked "before" and see that the
    rest follow them. Places whose owner left them (to join again) stay: they were drawn."""
    ranked = conn.execute(select(rooms.c.ranked_places).where(rooms.c.product_id == product.id)).scalar() or 0
    rows = conn.execute(select(entries.c.position, entries.c.id).where(
        entries.c.product_id == product.id, entries.c.position.is_not(None)).order_by(entries.c.position)).all()
    return [PublishedPlace(row.position, row.id, "before" if row.position <= ranked else "after") for row in rows]


def due_for_a_step(room: Row | None, product: QueuedProduct, now: datetime) -> bool:
    """Whether a poll should run an admission step: after the start, not in the last second."""
    return (now >= product.starts_at and room is not None
            and (room.advanced_at is None or room.advanced_at <= now - timedelta(seconds=ADVANCE_EVERY_SECONDS)))


def line_state(conn: Connection, product: QueuedProduct, room: Row | None, now: datetime) -> str:
    """not_open, open, admitting or sold_out, by the shop's clock and the stock; closed once its owner closed it."""
    if now < product.opens_at:
        return "not_open"
    if room is not None and room.closed_at is not None:
        return "closed"
    if room is None or now < product.starts_at:
        return "open"
    return "sold_out" if sold_out(conn, product) else "admitting"


def admitted_last_minute(conn: Connection, product: QueuedProduct, now: datetime) -> int:
    """How fast the line moves: places admitted in the last minute (a range of the admitted_at index)."""
    return conn.execute(select(func.count()).select_from(entries).where(
        entries.c.product_id == product.id, entries.c.admitted_at > now - timedelta(minutes=1))).scalar_one()


def standing(conn: Connection, product: QueuedProduct, now: datetime) -> Standing:
    """How the line stands, the same for every reader."""
    room = room_of(conn, product, now)  # the first look after it opens draws the seed
    length = last_minute = 0
    if room is not None:
        length = conn.execute(select(func.count()).select_from(entries)
                              .where(entries.c.product_id == product.id)).scalar_one()
        last_minute = admitted_last_minute(conn, product, now)
    return Standing(
        product=product, state=line_state(conn, product, room, now),
        seed_hash=room.seed_hash if room is not None else None,
        seed=room.seed.hex() if room is not None and now >= product.starts_at else None,
        length=length, admitted_through=room.admitted_through if room is not None else 0,
        available=units_left(conn, product, now), admitted_last_minute=last_minute)


def place_of(conn: Connection, product: QueuedProduct, owner: Owner, now: datetime) -> Place | None:
    """The owner's place and what it may do now; None when it has none."""
    entry = own_entry(conn, product, owner)
    if entry is None:
        return None
    room = conn.execute(select(rooms.c.admitted_through, rooms.c.closed_at)
                        .where(rooms.c.product_id == product.id)).first()
    admitted_through = room.admitted_through if room is not None else 0
    if turn_over(conn, product, entry, now):
        status = "expired"
    elif entry.held_at is not None:
        status = "held"
    elif entry.admitted_at is None and room is not None and room.closed_at is not None:
        status = "closed"
    elif now >= product.starts_at and sold_out(conn, product):
        status = "closed"
    elif entry.admitted_at is not None:
        status = "admitted"
    else:
        status = "waiting"
    ahead = (max(entry.position - admitted_through - 1, 0)
             if status == "waiting" and entry.position is not None else None)
    return Place(entry.id, status, entry.position, ahead,
                 entry.pass_expires_at if status == "admitted" else None, entry.joined_at)


_OWN_PASS = select(entries.c.id, entries.c.held_at, entries.c.pass_expires_at).where(
    entries.c.product_id == bindparam("product"), entries.c.user_id == bindparam("visitor"),
    entries.c.browser_id == bindparam("browser"), entries.c.left_at.is_(None), entries.c.admitted_at.is_not(None))


def live_pass(conn: Connection, queue_of: int, owner: Owner, now: datetime, *,
              spent_on_a_hold_taken_over: bool = False) -> uuid.UUID:
    """The owner's pass a hold or a checkout may spend: admitted, live and unspent; or, for a
    checkout that takes over the hold this pass was spent on, that spent pass (the checkout is
    the same admission's one hold). Raises NotAdmitted. The caller spends it (:func:`spend_pass`)
    once the units are taken, in the same transaction, so a refusal leaves it as it was."""
    entry = conn.execute(_OWN_PASS, {"product": queue_of, "visitor": owner.visitor_id,
                                     "browser": owner.browser_id}).first()
    # Unspent, it must be live; spent, only on the hold taken over (whose pass may have lapsed since).
    usable = entry is not None and (spent_on_a_hold_taken_over if entry.held_at is not None
                                    else entry.pass_expires_at > now)
    if not usable:
        raise not_admitted(conn, queue_of, owner)
    return entry.id


def spend_pass(conn: Connection, entry_id: uuid.UUID, now: datetime) -> None:
    """One admission, one hold: the place is ``held`` from now on (a pass spent already stays so)."""
    conn.execute(update(entries).where(entries.c.id == entry_id, entries.c.held_at.is_(None)).values(held_at=now))


def not_admitted(conn: Connection, queue_of: int, owner: Owner) -> NotAdmitted:
    """The refusal, with where the owner stands (its position, None without a place)."""
    position = conn.execute(select(entries.c.position).where(
        entries.c.product_id == queue_of, entries.c.user_id == owner.visitor_id,
        entries.c.browser_id == owner.browser_id)).scalar()
    admitted_through = conn.execute(
        select(rooms.c.admitted_through).where(rooms.c.product_id == queue_of)).scalar() or 0
    return NotAdmitted(queue_of, position, admitted_through)


def queues_to_advance(conn: Connection, now: datetime) -> list[int]:
    """Live started queues: places still to admit, and units not yet all sold (of the product or its
    options). A drop that sold out, or whose line is all let in, is never written to again."""
    item = products.alias("item")
    unsold = (select(buckets.c.product_id).join(item, item.c.id == buckets.c.product_id)
              .where((item.c.id == products.c.id) | (item.c.option_of == products.c.id),
                     buckets.c.total_units > buckets.c.sold_units))
    return conn.execute(select(products.c.id).where(
        products.c.queued, products.c.option_of.is_(None), products.c.archived_at.is_(None),
        products.c.starts_at <= now,
        select(entries.c.id).where(entries.c.product_id == products.c.id, entries.c.admitted_at.is_(None),
                                   entries.c.left_at.is_(None)).exists(),
        unsold.exists(),
        ~select(rooms.c.product_id).where(rooms.c.product_id == products.c.id, rooms.c.closed_at.is_not(None)).exists(),
    )).scalars().all()


def close_line(conn: Connection, product: QueuedProduct, now: datetime) -> int:
    """Close the line, its owner's call on the day: nobody joins it or is let in from now on, and every
    place still waiting reads ``closed`` at once; a place already let in keeps its pass (as a pause
    keeps them). Closing again changes nothing. Returns the places still waiting, now closed.
    Raises QueueNotOpen before the room opens (nobody is in it to tell)."""
    room = room_of(conn, product, now, lock=True)
    if room is None:
        raise QueueNotOpen(product.opens_at)
    if room.closed_at is None:
        conn.execute(update(rooms).where(rooms.c.product_id == product.id).values(closed_at=now))
    return conn.execute(select(func.count()).select_from(entries).where(
        entries.c.product_id == product.id, entries.c.admitted_at.is_(None), entries.c.left_at.is_(None))
    ).scalar_one()
