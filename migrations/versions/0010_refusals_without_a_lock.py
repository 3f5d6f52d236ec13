"""A hold refused for want of stock costs no lock: storefront_place_hold, version 3.

The refusal is one read (no product row lock, no advisory lock, nothing written), exact
because the units of lapsed, unreleased holds count as free in it, as in the stock
check. The function's text: storefront/inventory/sql/place_hold_v3.sql.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

from storefront.inventory.sql import sql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v3.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v2.sql"))
