"""A drop's waiting room: products may be queued; their rooms, places and the door's spent proofs.

storefront_place_hold, version 7, refuses a hold on a queued product without an admitted place
('not_admitted') and spends the pass of one that holds (storefront/inventory/sql/place_hold_v7.sql);
its signature is version 6's, so it is replaced in place. A hold spends its place's pass by
writing ``held_at``, which no index names, on a page kept a fifth free (fillfactor 80): the write
stays on its page without touching an index (a HOT update).

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime
from storefront.inventory.sql import sql

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

ADMITTED = "admitted_at IS NOT NULL"


def upgrade():
    with op.batch_alter_table('products') as table:
        table.add_column(sa.Column('queued', sa.Boolean(), server_default=sa.false(), nullable=False))
        table.create_check_constraint('queue_has_start', 'NOT queued OR starts_at IS NOT NULL')
    op.create_table(
        'queues',
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('seed', sa.LargeBinary(length=32), nullable=False),
        sa.Column('seed_hash', sa.String(length=64), nullable=False),
        sa.Column('opened_at', UTCDateTime(), nullable=False),
        sa.Column('ranked_at', UTCDateTime(), nullable=True),
        sa.Column('last_position', sa.Integer(), server_default='0', nullable=False),
        sa.Column('admitted_through', sa.Integer(), server_default='0', nullable=False),
        sa.Column('advanced_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('product_id'),
    )
    op.create_table(
        'queue_entries',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False),
        sa.Column('client_address', sa.String(length=45), server_default='', nullable=False),
        sa.Column('joined_at', UTCDateTime(), nullable=False),
        sa.Column('rank_key', sa.LargeBinary(length=32), nullable=False),
        sa.Column('position', sa.Integer(), nullable=True),
        sa.Column('admitted_at', UTCDateTime(), nullable=True),
        sa.Column('pass_expires_at', UTCDateTime(), nullable=True),
        sa.Column('held_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['product_id'], ['queues.product_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        postgresql_with={'fillfactor': 80},
    )
    op.create_index('uq_queue_entries_owner', 'queue_entries', ['product_id', 'user_id', 'browser_id'], unique=True)
    op.create_index('ix_queue_entries_position', 'queue_entries', ['product_id', 'position'])
    op.create_index('ix_queue_entries_address', 'queue_entries', ['product_id', 'client_address'])
    op.create_index('ix_queue_entries_admitted_at', 'queue_entries', ['product_id', 'admitted_at'])
    op.create_index('ix_queue_entries_admitted', 'queue_entries', ['product_id', 'pass_expires_at'],
                    postgresql_where=sa.text(ADMITTED), sqlite_where=sa.text(ADMITTED))
    op.create_table(
        'spent_challenges',
        sa.Column('challenge', sa.String(length=128), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('challenge'),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v7.sql"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v6.sql"))
    op.drop_table('spent_challenges')
    op.drop_table('queue_entries')
    op.drop_table('queues')
    with op.batch_alter_table('products') as table:
        table.drop_constraint('queue_has_start', type_='check')
        table.drop_column('queued')
