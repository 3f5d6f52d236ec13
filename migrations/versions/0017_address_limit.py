"""A limit per client address: every owner behind one address (an IPv4 address or an IPv6 /64)
shares MAX_HELD_UNITS_PER_ADDRESS live units, whatever visitor ids it sends.

storefront_place_hold, version 6, takes the address's limit as a ninth argument and answers
'address_limit' past it (storefront/inventory/sql/place_hold_v6.sql); its signature changes,
so version 5 is dropped. The index finds an address's live units without reading anyone
else's holds. Its predicate names the address (every hold has one, '' at worst): only a query
that compares the address implies it, so neither the lapse lookups (which name the expiry,
and with an expiry-led predicate took this index and read all of it) nor a visitor's look
can take it, the trap migration 0015 closed for the product-expiry index.

The same trap the other way: the address's look (status PENDING, its address) implied the
predicate of ``uq_holds_pending_owner`` (status PENDING alone), and a plan made on a quiet
shop read that whole index on every hold once a drop had filled it (4,257 buffers a hold
with 20,000 live holds, tests/test_buckets.py). Its predicate now names the visitor id too,
true of every hold (the column is NOT NULL) and implied only by a look that compares it.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

from storefront.inventory.sql import sql

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_V5 = "storefront_place_hold(uuid, integer, varchar, varchar, varchar, integer, integer, integer)"
_V6 = "storefront_place_hold(uuid, integer, varchar, varchar, varchar, integer, integer, integer, integer)"
NAME = "ix_holds_pending_address"
WHERE = "status = 'PENDING' AND client_address IS NOT NULL"
OWNER = "uq_holds_pending_owner"
OWNER_COLUMNS = ['user_id', 'browser_id', 'product_id']
OWNER_WHERE = "status = 'PENDING' AND user_id IS NOT NULL"
OWNER_WHERE_BEFORE = "status = 'PENDING'"


def _owner_index(where: str):
    with op.batch_alter_table('holds') as table:
        table.drop_index(OWNER)
    with op.batch_alter_table('holds') as table:
        table.create_index(OWNER, OWNER_COLUMNS, unique=True, postgresql_where=sa.text(where),
                           sqlite_where=sa.text(where))


def upgrade():
    with op.batch_alter_table('holds') as table:
        table.create_index(NAME, ['client_address', 'expires_at'], unique=False,
                           postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))
    _owner_index(OWNER_WHERE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_V5}")
        op.execute(sql("place_hold_v6.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_V6}")
        op.execute(sql("place_hold_v5.sql"))
    _owner_index(OWNER_WHERE_BEFORE)
    with op.batch_alter_table('holds') as table:
        table.drop_index(NAME)
