"""Holds, carts and checkouts belong to a browser: the visitor id plus the browser's secret.

Fingerprints collide (identical phones share one), so the visitor id alone no longer
decides ownership. ``browser_id`` is the browser's secret from its signed cookie, or ''
for a client that sends none (a script). ``client_address`` lets the hold limit cover
one person's private windows (same visitor id, same address).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'PENDING'")


def upgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('client_address', sa.String(length=45), server_default='', nullable=False))
        batch_op.drop_index('uq_holds_pending_visitor', postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('uq_holds_pending_owner', ['product_id', 'user_id', 'browser_id'], unique=True,
                              postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('ix_holds_pending_visitor', ['user_id'], unique=False,
                              postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False))
    with op.batch_alter_table('cart_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False))
        batch_op.drop_constraint('pk_cart_lines', type_='primary')
        batch_op.create_primary_key('pk_cart_lines', ['user_id', 'browser_id', 'product_id'])


def downgrade():
    with op.batch_alter_table('cart_lines', schema=None) as batch_op:
        batch_op.drop_constraint('pk_cart_lines', type_='primary')
        batch_op.execute("DELETE FROM cart_lines WHERE browser_id <> ''")
        batch_op.create_primary_key('pk_cart_lines', ['user_id', 'product_id'])
        batch_op.drop_column('browser_id')
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_column('browser_id')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_pending_visitor', postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.drop_index('uq_holds_pending_owner', postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('uq_holds_pending_visitor', ['product_id', 'user_id'], unique=True,
                              postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.drop_column('client_address')
        batch_op.drop_column('browser_id')
