"""The draw: a product sold by a draw (``products.draw``, entries open from ``starts_at`` until
``entries_close``), its seed and walk (``draws``), its entries (``draw_entries``: one per buyer,
owner, email, address and card), and the hold function's version 9, which refuses a hold on a
draw's product ('draw_only').

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

from storefront.clock import UTCDateTime
from storefront.inventory.sql import sql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

COUNTED = "status NOT IN ('withdrawn', 'duplicate')"
CARD_ENTERED = "status NOT IN ('withdrawn', 'duplicate', 'pending_payment') AND card_fingerprint IS NOT NULL"
AUTHORISATION_HELD = ("status IN ('lost', 'duplicate', 'withdrawn', 'forfeited') AND released_at IS NULL"
                      " AND payment_intent_id IS NOT NULL")


def _where(condition: str) -> dict:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade():
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("draw", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("entries_close", UTCDateTime(), nullable=True))
        batch.create_check_constraint(
            "draw_has_window", "NOT draw OR (starts_at IS NOT NULL AND entries_close IS NOT NULL AND NOT queued)")
    op.create_table(
        "draws",
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seed", sa.LargeBinary(32), nullable=False),
        sa.Column("seed_hash", sa.String(64), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("ranked_at", UTCDateTime(), nullable=True),
        sa.Column("walked_through", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("walked_at", UTCDateTime(), nullable=True),
        sa.Column("walker", sa.String(64), nullable=True),
        sa.Column("walker_until", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "draw_entries",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("draws.product_id", ondelete="CASCADE"), nullable=False),
        sa.Column("choice_id", sa.Integer(), sa.ForeignKey("products.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("backup_id", sa.Integer(), sa.ForeignKey("products.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("browser_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("client_address", sa.String(45), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rank_key", sa.LargeBinary(32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("won_product_id", sa.Integer(), sa.ForeignKey("products.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("authorised_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_intent_id", sa.String(255), nullable=True),
        sa.Column("card_fingerprint", sa.String(64), nullable=True),
        sa.Column("refund_id", sa.String(255), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ship_name", sa.String(200), nullable=True),
        sa.Column("ship_line1", sa.String(200), nullable=True),
        sa.Column("ship_line2", sa.String(200), nullable=True),
        sa.Column("ship_city", sa.String(100), nullable=True),
        sa.Column("ship_state", sa.String(100), nullable=True),
        sa.Column("ship_postal_code", sa.String(20), nullable=True),
        sa.Column("ship_country", sa.String(2), nullable=True),
        sa.Column("buyer_email", sa.String(254), nullable=True),
        sa.Column("buyer_address", sa.String(300), nullable=True),
        sa.Column("shop_url", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=True),
        sa.Column("selected_at", UTCDateTime(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
    )
    op.create_index("uq_draw_entries_owner", "draw_entries", ["product_id", "user_id", "browser_id"], unique=True,
                    **_where(COUNTED))
    op.create_index("uq_draw_entries_email", "draw_entries", ["product_id", "buyer_email"], unique=True,
                    **_where(COUNTED))
    op.create_index("uq_draw_entries_address", "draw_entries", ["product_id", "buyer_address"], unique=True,
                    **_where(COUNTED))
    op.create_index("uq_draw_entries_card", "draw_entries", ["product_id", "card_fingerprint"], unique=True,
                    **_where(CARD_ENTERED))
    op.create_index("ix_draw_entries_rank", "draw_entries", ["product_id", "rank"])
    op.create_index("ix_draw_entries_intent", "draw_entries", ["payment_intent_id"])
    op.create_index("ix_draw_entries_to_release", "draw_entries", ["product_id"], **_where(AUTHORISATION_HELD))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v9.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v8.sql"))
    op.drop_table("draw_entries")
    op.drop_table("draws")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint("draw_has_window", type_="check")
        batch.drop_column("entries_close")
        batch.drop_column("draw")
