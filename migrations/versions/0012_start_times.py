"""A product's start time (products.starts_at): before it, holds and checkouts are refused
with not_on_sale. storefront_place_hold, version 5, refuses them and returns the start time,
so its result gains a column: the function is dropped and created again. Its text:
storefront/inventory/sql/place_hold_v5.sql.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime
from storefront.inventory.sql import sql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_SIGNATURE = "storefront_place_hold(uuid, integer, varchar, varchar, varchar, integer, integer, integer)"


def upgrade():
    with op.batch_alter_table('products') as table:
        table.add_column(sa.Column('starts_at', UTCDateTime(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_SIGNATURE}")
        op.execute(sql("place_hold_v5.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_SIGNATURE}")
        op.execute(sql("place_hold_v4.sql"))
    with op.batch_alter_table('products') as table:
        table.drop_column('starts_at')
