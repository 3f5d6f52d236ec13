"""Carts and checkouts.

A checkout holds every line of a cart at once; its holds point at it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:47:31.116342

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('checkouts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('refund_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_checkouts_amount_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkouts'))
    )
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkouts_payment_intent_id'), ['payment_intent_id'], unique=False)
        batch_op.create_index('ix_checkouts_visitor_created', ['user_id', 'created_at'], unique=False)

    op.create_table('cart_lines',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_cart_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_cart_lines_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'product_id', name=op.f('pk_cart_lines'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkout_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_holds_checkout_id'), ['checkout_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_holds_checkout_id_checkouts'), 'checkouts', ['checkout_id'], ['id'])



def downgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_holds_checkout_id_checkouts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_holds_checkout_id'))
        batch_op.drop_column('checkout_id')

    op.drop_table('cart_lines')
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index('ix_checkouts_visitor_created')
        batch_op.drop_index(batch_op.f('ix_checkouts_payment_intent_id'))

    op.drop_table('checkouts')
