"""A hold in one statement on PostgreSQL: the function storefront_place_hold.

One round trip, in its own transaction, does what inventory/holds.py's place_hold does
in several on SQLite: the visitor id's lock, the owner's live hold given back, the hold
limit (per owner, and per visitor id and address), the guarded reservation, lapsed
holds released only when the counters say no, and the insert. Inside a PL/pgSQL
function each statement sees what committed before it, so counting after the lock is
exact. It returns one row: an outcome, a detail number (units available, or held), and
the hold (a row of ``holds``).

Revision ID: 0006
Revises: 0005
"""
from alembic import op

from storefront.inventory.sql import sql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The function's text lives in storefront/inventory/sql/, one file per version.
PLACE_HOLD = sql("place_hold_v1.sql")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_HOLD)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS storefront_place_hold(uuid, integer, varchar, varchar, varchar, "
                   "integer, integer, integer)")
