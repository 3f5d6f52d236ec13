import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Uuid,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from uuid6 import uuid7

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db


def new_hold_id() -> uuid.UUID:
    """A new hold's id: a UUIDv7 (RFC 9562), its first 48 bits the millisecond it was made (a
    process making two in one millisecond moves the second on by one), the other 74 random.
    New holds go to the right-hand end of the primary key's index; random ids (uuid4) went to
    any of its leaf pages, each written whole into the WAL the first time it changed after a
    checkpoint: two thirds of a hold's WAL (docs/benchmarks.md). An id says when its hold was
    made, as the hold's page does; who may see a hold is the owner's check, never the id's
    secrecy."""
    return uuid7()


class HoldStatus(enum.StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


# Every hold has an expiry: this only keeps the index to queries that name it (migration 0015).
_PENDING_BY_EXPIRY = text("status = 'PENDING' AND expires_at IS NOT NULL")
_PENDING_OF_A_VISITOR = text("status = 'PENDING' AND user_id IS NOT NULL")
_PENDING_FROM_ADDRESS = text("status = 'PENDING' AND client_address IS NOT NULL")
_PENDING_FROM_BLOCK = text("status = 'PENDING' AND client_block IS NOT NULL")
_HAS_INTENT = text("payment_intent_id IS NOT NULL")
_IN_CHECKOUT = text("checkout_id IS NOT NULL")
_UNSETTLED_INTENT = text(
    "status IN ('EXPIRED', 'CANCELLED') AND payment_intent_id IS NOT NULL AND payment_released_at IS NULL"
)


class Hold(db.Model):
    """A visitor's reservation of units of one product (a "reservation" in the API)."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            "status IN ('PENDING', 'COMPLETED', 'EXPIRED', 'CANCELLED', 'REFUNDED')", name="status_known"
        ),
        # One live hold per owner (visitor id and browser) and product, guaranteed by the database.
        # Led by the visitor id: the hold limit counts a visitor id's live holds through it too.
        # Its predicate names the visitor id (true of every hold): only a look that compares it
        # can take this index, never an address's or a product's (migration 0017).
        Index(
            "uq_holds_pending_owner",
            "user_id",
            "browser_id",
            "product_id",
            unique=True,
            postgresql_where=_PENDING_OF_A_VISITOR,
            sqlite_where=_PENDING_OF_A_VISITOR,
        ),
        # Finds a product's lapsed holds without reading its live or finished ones; a query
        # that does not name the expiry (a visitor's PENDING holds) cannot take it.
        Index(
            "ix_holds_pending_product_expiry",
            "product_id",
            "expires_at",
            postgresql_where=_PENDING_BY_EXPIRY,
            sqlite_where=_PENDING_BY_EXPIRY,
        ),
        # An address's live units, for MAX_HELD_UNITS_PER_ADDRESS. Only a query that compares the
        # address implies its predicate, so no other look can take it (migration 0017).
        Index(
            "ix_holds_pending_address",
            "client_address",
            "expires_at",
            postgresql_where=_PENDING_FROM_ADDRESS,
            sqlite_where=_PENDING_FROM_ADDRESS,
        ),
        # An IPv6 /48's live units (IPV6_BLOCK_FACTOR): only IPv6 holds name a block and take an entry.
        Index(
            "ix_holds_pending_block",
            "client_block",
            "expires_at",
            postgresql_where=_PENDING_FROM_BLOCK,
            sqlite_where=_PENDING_FROM_BLOCK,
        ),
        Index("ix_holds_visitor_created", "user_id", "created_at"),
        # A product's holds by when they were placed: a drop's live view reads its window alone.
        Index("ix_holds_product_created", "product_id", "created_at"),
        # Looked up by value only; most holds have neither and take no entry.
        Index("ix_holds_payment_intent_id", "payment_intent_id", postgresql_where=_HAS_INTENT,
              sqlite_where=_HAS_INTENT),
        Index("ix_holds_checkout_id", "checkout_id", postgresql_where=_IN_CHECKOUT, sqlite_where=_IN_CHECKOUT),
        # Released holds whose PaymentIntent is not settled yet: what reconciliation asks about.
        Index(
            "ix_holds_unsettled_intent",
            "intent_check_after",
            postgresql_where=_UNSETTLED_INTENT,
            sqlite_where=_UNSETTLED_INTENT,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_hold_id)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    # The product's stock bucket the units were taken from, and go back to (stock_buckets.bucket).
    bucket: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    user_id: Mapped[str] = mapped_column(String(128))  # the visitor id (a fingerprint, or a stored random id)
    # The browser's secret (its signed cookie); '' for a client that sends none. With user_id, the owner.
    browser_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # Where the hold was asked from: one visitor id from one address is one person's windows.
    client_address: Mapped[str] = mapped_column(String(45), default="", server_default="")
    client_block: Mapped[str | None] = mapped_column(String(45))  # an IPv6 client's /48; None for IPv4
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)  # price × quantity when held, minor units
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.PENDING)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    # Set once the PaymentIntent of a released hold is settled with Stripe: cancelled, or
    # paid and then sold or refunded. Until then reconciliation keeps asking about it.
    payment_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reconciliation's backoff: how often Stripe was asked in vain, and when to ask again.
    intent_checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    intent_check_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A REFUNDED hold: Stripe's refund id once the refund went through.
    refund_id: Mapped[str | None] = mapped_column(String(255))
    # The checkout this hold is a line of; None for a single-item hold.
    checkout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("checkouts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# "This hold is PENDING", for queries. The literal matters: compared with a bound
# parameter, PostgreSQL cannot use the partial indexes (nor pick the ON CONFLICT
# arbiter) once it switches a prepared statement to a generic plan.
is_pending = Hold.__table__.c.status == literal_column("'PENDING'")


class StockBucket(db.Model):
    """A share of one product's stock: its units are held and sold in its own row, so holds on
    one product lock different rows (inventory/stock.py says how units are taken, returned and
    moved between a product's buckets). The product's total is the sum of its buckets."""

    __tablename__ = "stock_buckets"
    __table_args__ = (
        CheckConstraint("total_units >= 0", name="total_not_negative"),
        CheckConstraint("held_units >= 0", name="held_not_negative"),
        CheckConstraint("sold_units >= 0", name="sold_not_negative"),
        # The last line of defence against overselling, whatever the code does: no bucket gives
        # more than it has, so no product does.
        CheckConstraint("held_units + sold_units <= total_units", name="never_oversold"),
    )

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    total_units: Mapped[int] = mapped_column(Integer, default=0)
    # Units of PENDING holds taken from this bucket, lapsed ones included until they are released.
    held_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sold_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Queue(db.Model):
    """A queued product's waiting room, made when it opens (inventory/queue.py): the secret seed
    that orders it, and how far admission has gone."""

    __tablename__ = "queues"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    seed: Mapped[bytes] = mapped_column(LargeBinary(32))  # secret until the start, then published
    seed_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the seed, published at once
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ranked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # entries placed by their HMAC
    # How many places the ranking at the start gave by their HMAC (positions 1 to this); every later
    # place (a join after the start, a straggler, a place joined again) is in the order of arrival.
    ranked_places: Mapped[int | None] = mapped_column(Integer)
    last_position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    admitted_through: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    advanced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its owner closed it: nobody more let in


class QueueEntry(db.Model):
    """One owner's place in a product's queue."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        # One current place an owner: a place it left (its pass lapsed unused, and it joined again) stays listed.
        Index("uq_queue_entries_owner", "product_id", "user_id", "browser_id", unique=True,
              postgresql_where=text("left_at IS NULL"), sqlite_where=text("left_at IS NULL")),
        Index("ix_queue_entries_position", "product_id", "position"),
        Index("ix_queue_entries_address", "product_id", "client_address"),
        Index("ix_queue_entries_block", "product_id", "client_block"),
        Index("ix_queue_entries_admitted_at", "product_id", "admitted_at"),
        # The live passes, counted on every admission step. No index names held_at, the one column a
        # hold writes, and pages keep a fifth free: the hold's write stays on its page (a HOT update).
        Index("ix_queue_entries_admitted", "product_id", "pass_expires_at",
              postgresql_where=text("admitted_at IS NOT NULL"), sqlite_where=text("admitted_at IS NOT NULL")),
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    product_id: Mapped[int] = mapped_column(ForeignKey("queues.product_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128))
    browser_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    client_address: Mapped[str] = mapped_column(String(45), default="", server_default="")
    client_block: Mapped[str | None] = mapped_column(String(45))  # an IPv6 client's /48; None for IPv4
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # HMAC-SHA256(seed, str(id)): the place's rank at the start (lowest first), secret until then.
    rank_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    position: Mapped[int | None] = mapped_column(Integer)  # 1-based; set at the start, or on joining after it
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pass_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its pass used: one admission, one hold
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its owner joined again, behind everyone


class EntryStatus(enum.StrEnum):
    """A draw entry's life (the contract's statuses)."""
    PENDING_PAYMENT = "pending_payment"  # made; its card not authorised yet
    ENTERED = "entered"  # authorised: in the draw
    WON = "won"  # drawn, and its authorisation captured: an order like any other
    LOST = "lost"  # not drawn (or never authorised by the close): its authorisation cancelled
    FORFEITED = "forfeited"  # drawn, but the capture failed (declined, expired, cancelled): the unit went on
    DUPLICATE = "duplicate"  # the same card as an entry before it: authorisation cancelled before the draw
    WITHDRAWN = "withdrawn"  # its owner withdrew it before the close, or Stripe cancelled its intent


# The entries that count as a buyer's one entry: every one but those withdrawn and duplicates.
_COUNTED_ENTRY = text("status NOT IN ('withdrawn', 'duplicate')")
_CARD_ENTERED = text("status NOT IN ('withdrawn', 'duplicate', 'pending_payment') AND card_fingerprint IS NOT NULL")
_AUTHORISATION_HELD = text("status IN ('lost', 'duplicate', 'withdrawn', 'forfeited') AND released_at IS NULL"
                           " AND payment_intent_id IS NOT NULL")


class Draw(db.Model):
    """A draw product's draw (inventory/draw.py): the secret seed published by its hash when entries
    open, revealed at the draw; and how far the walk through the ranking has gone."""

    __tablename__ = "draws"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    seed: Mapped[bytes] = mapped_column(LargeBinary(32))  # secret until the draw, then published
    seed_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the seed, published from the opening
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ranked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the seed revealed, the entries ranked
    walked_through: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # ranks decided
    walked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # every rank decided
    # The one walker at a time: a job that finds another's lease unexpired leaves the draw to it.
    walker: Mapped[str | None] = mapped_column(String(64))
    walker_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DrawEntry(db.Model):
    """One buyer's entry in a draw: its choice and second choice, its delivery details, and the card
    authorisation that pays for a unit if it wins (a payable: payments/payables.py)."""

    __tablename__ = "draw_entries"
    __table_args__ = (
        # One entry per buyer: the owner, the email, the delivery address, the card.
        Index("uq_draw_entries_owner", "product_id", "user_id", "browser_id", unique=True,
              postgresql_where=_COUNTED_ENTRY, sqlite_where=_COUNTED_ENTRY),
        Index("uq_draw_entries_email", "product_id", "buyer_email", unique=True,
              postgresql_where=_COUNTED_ENTRY, sqlite_where=_COUNTED_ENTRY),
        Index("uq_draw_entries_address", "product_id", "buyer_address", unique=True,
              postgresql_where=_COUNTED_ENTRY, sqlite_where=_COUNTED_ENTRY),
        Index("uq_draw_entries_card", "product_id", "card_fingerprint", unique=True,
              postgresql_where=_CARD_ENTERED, sqlite_where=_CARD_ENTERED),
        Index("ix_draw_entries_rank", "product_id", "rank"),
        Index("ix_draw_entries_intent", "payment_intent_id"),
        # Authorisations still to cancel (losers, duplicates, withdrawals, forfeits): what the sweep retries.
        Index("ix_draw_entries_to_release", "product_id", postgresql_where=_AUTHORISATION_HELD,
              sqlite_where=_AUTHORISATION_HELD),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # the client's, as for a queue's place
    product_id: Mapped[int] = mapped_column(ForeignKey("draws.product_id", ondelete="CASCADE"))
    choice_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    user_id: Mapped[str] = mapped_column(String(128))
    browser_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    client_address: Mapped[str] = mapped_column(String(45), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default=EntryStatus.PENDING_PAYMENT)
    # HMAC-SHA256(seed, str(id)), as for a queue's place: its rank (lowest first), secret until the draw.
    rank_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    rank: Mapped[int | None] = mapped_column(Integer)  # 1-based, among the entered, at the draw
    won_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    # What is captured if it wins (the won unit's price; at entry, the dearer of the two choices), and
    # what the card authorised.
    amount: Mapped[int] = mapped_column(Integer)
    authorised_amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    card_fingerprint: Mapped[str | None] = mapped_column(String(64))
    refund_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(254))
    ship_name: Mapped[str | None] = mapped_column(String(200))
    ship_line1: Mapped[str | None] = mapped_column(String(200))
    ship_line2: Mapped[str | None] = mapped_column(String(200))
    ship_city: Mapped[str | None] = mapped_column(String(100))
    ship_state: Mapped[str | None] = mapped_column(String(100))
    ship_postal_code: Mapped[str | None] = mapped_column(String(20))
    ship_country: Mapped[str | None] = mapped_column(String(2))
    buyer_email: Mapped[str | None] = mapped_column(String(254))
    buyer_address: Mapped[str | None] = mapped_column(String(300))
    shop_url: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # authorised
    selected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # drawn a unit: its capture under way
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # won, lost, forfeited
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its authorisation cancelled
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the outcome's email sent
