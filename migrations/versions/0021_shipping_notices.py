"""A shipping email, once: ``orders.shipping_notice_sent_at`` records when the shopper was told their
order is on its way (sent by a job when the owner marks it shipped; marking again changes only the
tracking reference, and sends nothing more).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

from storefront.clock import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("shipping_notice_sent_at", UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("shipping_notice_sent_at")
