"""Products can be archived; orders keep delivery details, payment, shipping and confirmation.

An archived product leaves the catalogue and takes no new holds (the hold function
now says not_found for it); its live holds still complete or lapse, and its orders
and history stay. An order is a hold or a checkout (same id) once the shopper gives
delivery details or pays.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime
from storefront.inventory.sql import sql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UNCONFIRMED = sa.text("paid_at IS NOT NULL AND email IS NOT NULL AND confirmation_sent_at IS NULL")

# The hold function's text lives in storefront/inventory/sql/, one file per version.
PLACE_HOLD = sql("place_hold_v2.sql")


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_at', UTCDateTime(), nullable=True))
    op.create_table(
        'orders',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('ship_name', sa.String(length=200), nullable=True),
        sa.Column('ship_line1', sa.String(length=200), nullable=True),
        sa.Column('ship_line2', sa.String(length=200), nullable=True),
        sa.Column('ship_city', sa.String(length=100), nullable=True),
        sa.Column('ship_state', sa.String(length=100), nullable=True),
        sa.Column('ship_postal_code', sa.String(length=20), nullable=True),
        sa.Column('ship_country', sa.String(length=2), nullable=True),
        sa.Column('paid_at', UTCDateTime(), nullable=True),
        sa.Column('shipped_at', UTCDateTime(), nullable=True),
        sa.Column('tracking_reference', sa.String(length=100), nullable=True),
        sa.Column('confirmation_sent_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('hold', 'checkout')", name=op.f('ck_orders_kind_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_paid_shipped', ['paid_at', 'shipped_at'], unique=False)
        batch_op.create_index('ix_orders_unconfirmed', ['paid_at'], unique=False,
                              postgresql_where=UNCONFIRMED, sqlite_where=UNCONFIRMED)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_HOLD)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v1.sql"))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_unconfirmed', postgresql_where=UNCONFIRMED, sqlite_where=UNCONFIRMED)
        batch_op.drop_index('ix_orders_paid_shipped')
    op.drop_table('orders')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('archived_at')
