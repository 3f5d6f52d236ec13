"""The admin's log: what an operator changed on the day, when, and from which address.

Written in the same transaction as the change it records (so a change that rolled back leaves no
line), and shown on the drop's live view, newest first. It is a record for the people running the
shop, not an audit trail against them: whoever holds the admin password can do what it records.
"""

from datetime import datetime

from sqlalchemy import Connection, Index, Integer, String, insert, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db
from storefront.owners import client_address

RECENT = 20


class AdminAction(db.Model):
    __tablename__ = "admin_actions"
    __table_args__ = (Index("ix_admin_actions_product", "product_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    product_id: Mapped[int | None] = mapped_column(Integer)  # None: the whole catalogue (a CSV import)
    action: Mapped[str] = mapped_column(String(40))  # pause, resume, move_start, add_stock, close_line, import
    detail: Mapped[str] = mapped_column(String(500))  # what changed, as the owner reads it
    address: Mapped[str] = mapped_column(String(45))  # the client address it came from


actions = AdminAction.__table__


def record_action(conn: Connection, product_id: int | None, action: str, detail: str) -> None:
    """One line in the log, in the caller's transaction, from the requesting client's address."""
    conn.execute(insert(actions).values(at=utcnow(), product_id=product_id, action=action, detail=detail[:500],
                                        address=client_address()))


def recent_actions(conn: Connection, product_ids: list[int], limit: int = RECENT) -> list:
    """The newest lines about these products (a drop and its options) and about the whole catalogue."""
    return conn.execute(select(actions).where(or_(actions.c.product_id.in_(product_ids), actions.c.product_id.is_(None)))
                        .order_by(actions.c.at.desc(), actions.c.id.desc()).limit(limit)).all()
