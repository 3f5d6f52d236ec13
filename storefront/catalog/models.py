from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db


class Product(db.Model):
    """A thing for sale. Its stock is the inventory's (``stock_buckets``, read and written
    only through ``storefront.inventory.stock``), which refers to this table, never the reverse.
    """

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("(option_of IS NULL) = (option_label IS NULL)", name="option_named"),
        CheckConstraint("NOT queued OR starts_at IS NOT NULL", name="queue_has_start"),
        CheckConstraint("per_buyer IS NULL OR per_buyer > 0", name="per_buyer_positive"),
        CheckConstraint("NOT draw OR (starts_at IS NOT NULL AND entries_close IS NOT NULL AND NOT queued)",
                        name="draw_has_window"),
        Index("ix_products_option_of", "option_of"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Integer)  # minor units of `currency`
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    image: Mapped[str | None] = mapped_column(String(200))  # path under static/
    # An option (a size, a colour) is a product of its own, sold, held and counted on its own, that
    # names the product it is an option of; its name is that product's and its label's.
    option_of: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    option_label: Mapped[str | None] = mapped_column(String(60))
    # When it goes on sale (all its options); None: on sale from the moment it is added.
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether its crowd is let in through a waiting room (inventory/queue.py) rather than by who
    # asks first; a product's options carry the same value, so a hold reads it from its own row.
    queued: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Sold by a draw (inventory/draw.py) rather than to whoever holds first: entries from starts_at until
    # entries_close, then drawn; no holds, no line. An option carries its product's values.
    draw: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    entries_close: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Paused by its owner on the day: no new hold, checkout or place (those given keep running).
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The most units one buyer (inventory/buyers.py) holds and buys of it and its options; None: no limit.
    per_buyer: Mapped[int | None] = mapped_column(Integer)
    # Set when the product is retired: gone from the catalogue and from new holds, kept in orders.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def sale_state(self, available: int, now: datetime) -> str:
        """Where its sale stands, as its owner reads it (SALE_STATES): archived, paused, scheduled (before
        its start), sold_out (nothing available: sold, or held by shoppers paying) or on_sale."""
        if self.archived:
            return "archived"
        if self.paused:
            return "paused"
        if self.starts_at is not None and now < self.starts_at:
            return "scheduled"
        return "sold_out" if available <= 0 else "on_sale"

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.sku}>"


SALE_STATES = {"archived": "Archived", "paused": "Paused", "scheduled": "Scheduled", "sold_out": "Sold out",
               "on_sale": "On sale"}

# The table as SQLAlchemy Core sees it, for the areas' statements (the hot paths write Core, not the ORM).
products = Product.__table__
