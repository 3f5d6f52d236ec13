"""Refunds made in Stripe itself (the Dashboard, the API): an order keeps how much of its
payment Stripe says was given back (``charge.refunded``), and when.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as table:
        table.add_column(sa.Column("stripe_refunded_amount", sa.Integer(), nullable=True))
        table.add_column(sa.Column("stripe_refunded_at", UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("orders") as table:
        table.drop_column("stripe_refunded_at")
        table.drop_column("stripe_refunded_amount")
