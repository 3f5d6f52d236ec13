"""PostgreSQL analyses the holds table after every 500 changed holds, not after a tenth of it.

The hot statements (the hold function's looks, the refusal's, the stock check's sum of lapsed
holds) run on generic plans that a pooled connection keeps until the table's statistics change.
Planned on statistics taken while the shop was quiet (few holds PENDING, or none at all), they
can read every PENDING hold, or the whole table, on every call once a drop fills it: 345
buffers a call at 20,000 holds in the worst case measured (docs/holds.md, "Plans made on a
quiet shop"). Autovacuum's default threshold is 50 rows plus 10% of the table, so a shop with a
million finished holds would get new statistics only after 100,000 changes: never, in a drop
of a few thousand units. With this, the statistics follow a drop within one autovacuum round
(``autovacuum_naptime``, a minute by default), and a new ANALYZE makes every connection plan
again. Each ANALYZE reads a sample of 30,000 rows whatever the table's size. 500 rather than
the 50 PostgreSQL starts from: a quiet shop's trickle of holds is analysed a tenth as often, and
a new shop's first statistics wait for 500 holds, seconds into its first drop.

Revision ID: 0016
Revises: 0015
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

CHANGED_HOLDS = 500


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE holds SET (autovacuum_analyze_scale_factor = 0,"
                   f" autovacuum_analyze_threshold = {CHANGED_HOLDS})")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE holds RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
