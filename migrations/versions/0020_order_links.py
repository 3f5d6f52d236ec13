"""Orders a shopper can find again: ``orders.shop_url``, the shop's address as the shopper's browser
reached it when they gave their delivery details, so that the confirmation (sent later, by a job
with no request) carries a link to the order's page that works in any browser (a signed token).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("shop_url", sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("shop_url")
