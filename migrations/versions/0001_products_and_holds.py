"""Products and holds.

The partial indexes on PENDING holds are what keep a hold cheap however many
live or finished holds a product has.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:29:53.148784

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('image', sa.String(length=200), nullable=True),
    sa.Column('total_quantity', sa.Integer(), nullable=False),
    sa.Column('held_units', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sold_units', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('held_units + sold_units <= total_quantity', name=op.f('ck_products_never_oversold')),
    sa.CheckConstraint('held_units >= 0', name=op.f('ck_products_held_not_negative')),
    sa.CheckConstraint('price >= 0', name=op.f('ck_products_price_not_negative')),
    sa.CheckConstraint('sold_units >= 0', name=op.f('ck_products_sold_not_negative')),
    sa.CheckConstraint('total_quantity >= 0', name=op.f('ck_products_total_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('sku', name=op.f('uq_products_sku'))
    )
    op.create_table('holds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'COMPLETED', 'EXPIRED', 'CANCELLED', 'REFUNDED')", name=op.f('ck_holds_status_known')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_holds_amount_not_negative')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_holds_quantity_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_holds_product_id_products'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holds_payment_intent_id'), ['payment_intent_id'], unique=False)
        batch_op.create_index('ix_holds_pending_product_expiry', ['product_id', 'expires_at'], unique=False, postgresql_where=sa.text("status = 'PENDING'"), sqlite_where=sa.text("status = 'PENDING'"))
        batch_op.create_index('ix_holds_visitor_created', ['user_id', 'created_at'], unique=False)
        batch_op.create_index('uq_holds_pending_visitor', ['product_id', 'user_id'], unique=True, postgresql_where=sa.text("status = 'PENDING'"), sqlite_where=sa.text("status = 'PENDING'"))



def downgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('uq_holds_pending_visitor', postgresql_where=sa.text("status = 'PENDING'"), sqlite_where=sa.text("status = 'PENDING'"))
        batch_op.drop_index('ix_holds_visitor_created')
        batch_op.drop_index('ix_holds_pending_product_expiry', postgresql_where=sa.text("status = 'PENDING'"), sqlite_where=sa.text("status = 'PENDING'"))
        batch_op.drop_index(batch_op.f('ix_holds_payment_intent_id'))

    op.drop_table('holds')
    op.drop_table('products')
