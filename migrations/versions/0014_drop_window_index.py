"""The holds of a product by when they were placed: the owner's live view of a drop reads
only its window (from the start on), however many holds the table keeps from before.

Revision ID: 0014
Revises: 0013
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('holds') as table:
        table.create_index('ix_holds_product_created', ['product_id', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('holds') as table:
        table.drop_index('ix_holds_product_created')
