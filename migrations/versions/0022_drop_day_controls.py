"""The owner's drop day: an admin log (``admin_actions``: what an operator changed, when, from which
address, shown on the drop's live view) and a line its owner can close (``queues.closed_at``: nobody
joins it or is let in from then on; every place still waiting reads closed).

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

from storefront.clock import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("address", sa.String(45), nullable=False),
    )
    op.create_index("ix_admin_actions_product", "admin_actions", ["product_id", "at"])
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("closed_at")
    op.drop_index("ix_admin_actions_product", table_name="admin_actions")
    op.drop_table("admin_actions")
