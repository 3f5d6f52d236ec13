"""What keeps a drop from being cornered: a pause, a limit per buyer, a place that can be left.

- ``products.paused``: a paused product takes no new hold, checkout, queue place or draw entry
  (holds and passes already given keep running); its options carry its value.
- ``products.per_buyer``: the most units one buyer holds and buys of the product and its
  options together (NULL: no limit); its options carry its value.
- ``orders.buyer_email`` and ``orders.buyer_address``: the keys that tell one buyer (the email, and the
  country, postal code and first line of the address, with case, spacing and punctuation out),
  indexed, for a product's limit per buyer at the delivery step and at settlement.
- ``holds.client_block`` and ``queue_entries.client_block``: an IPv6 client's /48, whose owners
  share every per-address limit at IPV6_BLOCK_FACTOR times its value (NULL for IPv4, so the
  block's index holds IPv6 holds alone).
- ``limit_windows`` and ``limit_hits``: without Redis, the hold rate (a sliding window counter, one
  row per address: this window's count and the last one's) and the admin's failed logins (a row each) are counted in the
  database, which every process and host shares (each gunicorn worker once counted apart).
- ``queues.ranked_places``: how many places the ranking at the start gave by their HMAC, so that
  the published list says which places anyone can check against the seed.
- ``queue_entries.left_at``: an owner whose pass lapsed unused may join again, behind everyone;
  the lapsed place stays in the published list (it was drawn and ranked) and is marked left, so
  the owner's one current place is unique among places not left.

storefront_place_hold, version 8, takes an IPv6 client's /48 and its limit, the units one pass
may take and the hold rate's count (it counts HOLD_RATE_LIMIT itself, in limit_windows), and
refuses 'block_limit', 'paused', 'pass_limit', 'buyer_limit' and 'rate_limited'
(storefront/inventory/sql/place_hold_v8.sql); its signature changes, so version 7 is dropped.
The count itself is storefront_count_hit (count_hit_v1.sql), which checkouts and cart changes
call on their own.

Revision ID: 0019
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime
from storefront.inventory.sql import sql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_V7 = "storefront_place_hold(uuid, integer, varchar, varchar, varchar, integer, integer, integer, integer)"
_V8 = ("storefront_place_hold(uuid, integer, varchar, varchar, varchar, varchar, integer, integer, integer, integer,"
       " integer, integer, varchar, varchar, bigint, double precision, integer, integer)")
OWNER = "uq_queue_entries_owner"
OWNER_COLUMNS = ['product_id', 'user_id', 'browser_id']
CURRENT = "left_at IS NULL"
BLOCK = "ix_holds_pending_block"
BLOCK_WHERE = "status = 'PENDING' AND client_block IS NOT NULL"


def upgrade():
    op.create_table(
        'limit_hits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_limit_hits_key_at', 'limit_hits', ['scope', 'key', 'at'])
    # UNLOGGED on PostgreSQL: a count lasts a minute, so it writes no WAL and waits for no flush; a
    # crash empties the table, which forgives a minute's requests and loses nothing else.
    op.create_table(
        'limit_windows',
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('window_start', sa.BigInteger(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('last_hits', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('scope', 'key'),
        prefixes=['UNLOGGED'] if op.get_bind().dialect.name == "postgresql" else [],
    )
    with op.batch_alter_table('orders') as table:
        table.add_column(sa.Column('buyer_email', sa.String(length=254), nullable=True))
        table.add_column(sa.Column('buyer_address', sa.String(length=300), nullable=True))
        table.create_index('ix_orders_buyer_email', ['buyer_email'], unique=False)
        table.create_index('ix_orders_buyer_address', ['buyer_address'], unique=False)
    # Orders made before keep counting by email (the address's key is made as new details come).
    op.execute("UPDATE orders SET buyer_email = lower(trim(email)) WHERE email IS NOT NULL AND trim(email) <> ''")
    with op.batch_alter_table('products') as table:
        table.add_column(sa.Column('paused', sa.Boolean(), server_default=sa.false(), nullable=False))
        table.add_column(sa.Column('per_buyer', sa.Integer(), nullable=True))
        table.create_check_constraint('per_buyer_positive', 'per_buyer IS NULL OR per_buyer > 0')
    with op.batch_alter_table('holds') as table:
        table.add_column(sa.Column('client_block', sa.String(length=45), nullable=True))
        table.create_index(BLOCK, ['client_block', 'expires_at'], unique=False,
                           postgresql_where=sa.text(BLOCK_WHERE), sqlite_where=sa.text(BLOCK_WHERE))
    with op.batch_alter_table('queues') as table:
        table.add_column(sa.Column('ranked_places', sa.Integer(), nullable=True))
    with op.batch_alter_table('queue_entries') as table:
        table.add_column(sa.Column('left_at', UTCDateTime(), nullable=True))
        table.add_column(sa.Column('client_block', sa.String(length=45), nullable=True))
        table.create_index('ix_queue_entries_block', ['product_id', 'client_block'], unique=False)
        table.drop_index(OWNER)
    with op.batch_alter_table('queue_entries') as table:
        table.create_index(OWNER, OWNER_COLUMNS, unique=True, postgresql_where=sa.text(CURRENT),
                           sqlite_where=sa.text(CURRENT))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_V7}")
        op.execute(sql("count_hit_v1.sql"))
        op.execute(sql("place_hold_v8.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_V8}")
        op.execute("DROP FUNCTION storefront_count_hit(varchar, varchar, bigint)")
        op.execute(sql("place_hold_v7.sql"))
    op.execute("DELETE FROM queue_entries WHERE left_at IS NOT NULL")
    with op.batch_alter_table('queue_entries') as table:
        table.drop_index(OWNER)
    with op.batch_alter_table('queue_entries') as table:
        table.create_index(OWNER, OWNER_COLUMNS, unique=True)
        table.drop_index('ix_queue_entries_block')
        table.drop_column('client_block')
        table.drop_column('left_at')
    with op.batch_alter_table('queues') as table:
        table.drop_column('ranked_places')
    with op.batch_alter_table('holds') as table:
        table.drop_index(BLOCK)
        table.drop_column('client_block')
    with op.batch_alter_table('products') as table:
        table.drop_constraint('per_buyer_positive', type_='check')
        table.drop_column('per_buyer')
        table.drop_column('paused')
    with op.batch_alter_table('orders') as table:
        table.drop_index('ix_orders_buyer_address')
        table.drop_index('ix_orders_buyer_email')
        table.drop_column('buyer_address')
        table.drop_column('buyer_email')
    op.drop_table('limit_windows')
    op.drop_table('limit_hits')
