"""Payment events, refunds and released payments.

holds.refund_id and holds.payment_released_at let the refund and the
PaymentIntent cancellation be retried until they have gone through.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:48:48.033009

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payment_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('reservation_id', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_events'))
    )
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.create_index('ix_payment_events_intent', ['payment_intent_id', 'received_at'], unique=False)

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_released_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('refund_id', sa.String(length=255), nullable=True))



def downgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_column('refund_id')
        batch_op.drop_column('payment_released_at')

    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_events_intent')

    op.drop_table('payment_events')
