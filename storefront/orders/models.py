import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db

_UNCONFIRMED = text("paid_at IS NOT NULL AND email IS NOT NULL AND confirmation_sent_at IS NULL")


class Order(db.Model):
    """A hold or a checkout once the shopper gives delivery details or pays, whichever is first.

    ``id`` is the hold's or the checkout's own id: its lines are that hold, or the
    checkout's holds. Delivery details are the shopper's (shown to their browser and
    the operator only); ``paid_at`` is set once, by whichever trigger settles the payment.
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("kind IN ('hold', 'checkout')", name="kind_known"),
        # Orders to fulfil, oldest payment first.
        Index("ix_orders_paid_shipped", "paid_at", "shipped_at"),
        # Paid orders whose confirmation has not gone out yet: what the sweep re-sends.
        Index("ix_orders_unconfirmed", "paid_at", postgresql_where=_UNCONFIRMED, sqlite_where=_UNCONFIRMED),
        # One buyer's orders, by email or by address (a product's limit per buyer: orders/buyers.py).
        Index("ix_orders_buyer_email", "buyer_email"),
        Index("ix_orders_buyer_address", "buyer_address"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # hold or checkout
    user_id: Mapped[str] = mapped_column(String(128))
    browser_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    amount: Mapped[int] = mapped_column(Integer)  # minor units, as held
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str | None] = mapped_column(String(254))
    ship_name: Mapped[str | None] = mapped_column(String(200))
    ship_line1: Mapped[str | None] = mapped_column(String(200))
    ship_line2: Mapped[str | None] = mapped_column(String(200))
    ship_city: Mapped[str | None] = mapped_column(String(100))
    ship_state: Mapped[str | None] = mapped_column(String(100))
    ship_postal_code: Mapped[str | None] = mapped_column(String(20))
    ship_country: Mapped[str | None] = mapped_column(String(2))
    # The buyer's keys (orders/delivery.py): the email and the address with case, spacing and punctuation out.
    buyer_email: Mapped[str | None] = mapped_column(String(254))
    buyer_address: Mapped[str | None] = mapped_column(String(300))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tracking_reference: Mapped[str | None] = mapped_column(String(100))
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shipping_notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # "on its way", sent once
    # The shop's address as the shopper reached it (https://shop.example/), for the order's link in emails.
    shop_url: Mapped[str | None] = mapped_column(String(200))
    # What Stripe says was refunded of the payment (charge.refunded), whoever refunded it.
    stripe_refunded_amount: Mapped[int | None] = mapped_column(Integer)
    stripe_refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
