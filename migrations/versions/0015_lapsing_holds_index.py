"""The index of a product's PENDING holds by expiry takes only queries that name the expiry.

As ``status = 'PENDING'`` alone, its predicate also fitted the hold function's look at a
visitor's own PENDING holds (inventory/sql/place_hold_v5.sql). A connection that planned that
look while few holds were PENDING (a quiet shop before a drop, or a table just vacuumed) could
keep a generic plan that reads this whole index rather than the visitor's entries in
uq_holds_pending_owner, and then read every PENDING hold on every hold as a drop filled the
index: 30,000 to 40,000 buffers a hold, 150 to 250 holds a second where 4,000 to 7,000 were
served (bench/drop.py's database run over 64 products, run again without its reset in
between: 12 runs in 27). ``expires_at IS NOT NULL`` is true of every hold (the column is NOT
NULL) and follows from the lapse queries' ``expires_at <= now``, but not from the visitor's
look, which can no longer take this index.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

NAME = 'ix_holds_pending_product_expiry'


def _create(where: str):
    with op.batch_alter_table('holds') as table:
        table.create_index(NAME, ['product_id', 'expires_at'], unique=False,
                           postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def upgrade():
    with op.batch_alter_table('holds') as table:
        table.drop_index(NAME)
    _create("status = 'PENDING' AND expires_at IS NOT NULL")


def downgrade():
    with op.batch_alter_table('holds') as table:
        table.drop_index(NAME)
    _create("status = 'PENDING'")
