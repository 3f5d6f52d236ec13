from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db


class Product(db.Model):
    """A thing for sale, with its stock counters.

    ``held_units`` and ``sold_units`` are maintained by ``storefront.inventory``
    under this row's lock, so a hold never has to sum the holds table.
    ``held_units`` may still include holds that lapsed and were not swept yet;
    ``inventory.stock`` is the one place that accounts for them.
    """

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("total_quantity >= 0", name="total_not_negative"),
        CheckConstraint("held_units >= 0", name="held_not_negative"),
        CheckConstraint("sold_units >= 0", name="sold_not_negative"),
        # The last line of defence against overselling, whatever the code does.
        CheckConstraint("held_units + sold_units <= total_quantity", name="never_oversold"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Integer)  # minor units of `currency`
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    image: Mapped[str | None] = mapped_column(String(200))  # path under static/
    total_quantity: Mapped[int] = mapped_column(Integer, default=0)
    held_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sold_units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when the product is retired: gone from the catalogue and from new holds, kept in orders.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.sku}>"
