import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db


class CartLine(db.Model):
    """One product and quantity in a visitor's cart (the cart is the visitor's lines)."""

    __tablename__ = "cart_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    browser_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="", server_default="")
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Checkout(db.Model):
    """A cart held all at once: one hold per line, one PaymentIntent for the sum."""

    __tablename__ = "checkouts"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        Index("ix_checkouts_visitor_created", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128))
    browser_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    refund_id: Mapped[str | None] = mapped_column(String(255))  # the partial refund, once issued
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
