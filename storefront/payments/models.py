from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db


class PaymentEvent(db.Model):
    """Every verified Stripe event we acted on, and what came of it.

    The record an operator reads when a payment did not end as expected (a
    failed card, a mismatched amount, a late payment refunded); also what lets
    a redelivered event be recognised.
    """

    __tablename__ = "payment_events"
    __table_args__ = (Index("ix_payment_events_intent", "payment_intent_id", "received_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's event id
    type: Mapped[str] = mapped_column(String(100))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    reservation_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))
    # How the shop learned of it: webhook, return (the shopper's return to the page) or reconcile.
    trigger: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")
    # A refund made because of it (a late payment with the stock gone, a wrong amount).
    refund_id: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
