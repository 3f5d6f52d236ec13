"""A product's stock in bucket rows (stock_buckets), so holds on one product lock different
rows; each hold remembers the bucket its units came from. The products' counters move into
one bucket each (the shop spreads a product over more when its total is next set), and
storefront_place_hold, version 4, takes units from the buckets: its text is
storefront/inventory/sql/place_hold_v4.sql.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

from storefront.inventory.sql import sql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_COUNTER_CHECKS = {
    "total_not_negative": "total_quantity >= 0",
    "held_not_negative": "held_units >= 0",
    "sold_not_negative": "sold_units >= 0",
    "never_oversold": "held_units + sold_units <= total_quantity",
}


def upgrade():
    op.create_table(
        'stock_buckets',
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('total_units', sa.Integer(), nullable=False),
        sa.Column('held_units', sa.Integer(), server_default='0', nullable=False),
        sa.Column('sold_units', sa.Integer(), server_default='0', nullable=False),
        sa.CheckConstraint('held_units + sold_units <= total_units', name=op.f('ck_stock_buckets_never_oversold')),
        sa.CheckConstraint('held_units >= 0', name=op.f('ck_stock_buckets_held_not_negative')),
        sa.CheckConstraint('sold_units >= 0', name=op.f('ck_stock_buckets_sold_not_negative')),
        sa.CheckConstraint('total_units >= 0', name=op.f('ck_stock_buckets_total_not_negative')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_stock_buckets_product_id_products'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('product_id', 'bucket', name=op.f('pk_stock_buckets')),
    )
    op.execute("INSERT INTO stock_buckets (product_id, bucket, total_units, held_units, sold_units)"
               " SELECT id, 0, total_quantity, held_units, sold_units FROM products")
    with op.batch_alter_table('holds') as table:
        table.add_column(sa.Column('bucket', sa.SmallInteger(), server_default='0', nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v4.sql"))
    with op.batch_alter_table('products') as table:
        for name in _COUNTER_CHECKS:
            table.drop_constraint(op.f(f'ck_products_{name}'), type_='check')
        table.drop_column('sold_units')
        table.drop_column('held_units')
        table.drop_column('total_quantity')


def downgrade():
    with op.batch_alter_table('products') as table:
        table.add_column(sa.Column('total_quantity', sa.Integer(), server_default='0', nullable=False))
        table.add_column(sa.Column('held_units', sa.Integer(), server_default='0', nullable=False))
        table.add_column(sa.Column('sold_units', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE products SET"
               " total_quantity = (SELECT COALESCE(sum(total_units), 0) FROM stock_buckets WHERE product_id = products.id),"
               " held_units = (SELECT COALESCE(sum(held_units), 0) FROM stock_buckets WHERE product_id = products.id),"
               " sold_units = (SELECT COALESCE(sum(sold_units), 0) FROM stock_buckets WHERE product_id = products.id)")
    with op.batch_alter_table('products') as table:
        for name, condition in _COUNTER_CHECKS.items():
            table.create_check_constraint(op.f(f'ck_products_{name}'), condition)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql("place_hold_v3.sql"))
    with op.batch_alter_table('holds') as table:
        table.drop_column('bucket')
    op.drop_table('stock_buckets')
