"""Payment reconciliation: ask Stripe about released holds' intents, with backoff; settlements
record how the shop learned of them and any refund they made.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UNSETTLED_INTENT = ("status IN ('EXPIRED', 'CANCELLED') AND payment_intent_id IS NOT NULL "
                    "AND payment_released_at IS NULL")


def upgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intent_checks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('intent_check_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_holds_unsettled_intent', ['intent_check_after'], unique=False,
                              postgresql_where=sa.text(UNSETTLED_INTENT), sqlite_where=sa.text(UNSETTLED_INTENT))
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger', sa.String(length=16), server_default='webhook', nullable=False))
        batch_op.add_column(sa.Column('refund_id', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.drop_column('refund_id')
        batch_op.drop_column('trigger')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_unsettled_intent', postgresql_where=sa.text(UNSETTLED_INTENT),
                            sqlite_where=sa.text(UNSETTLED_INTENT))
        batch_op.drop_column('intent_check_after')
        batch_op.drop_column('intent_checks')
