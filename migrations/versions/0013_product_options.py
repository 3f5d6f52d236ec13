"""Options of a product (sizes, colours): an option is a product row of its own, with its own
stock, holds and orders, that names the product it is an option of (option_of) and its label.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products') as table:
        table.add_column(sa.Column('option_of', sa.Integer(), nullable=True))
        table.add_column(sa.Column('option_label', sa.String(length=60), nullable=True))
        table.create_foreign_key(op.f('fk_products_option_of_products'), 'products', ['option_of'], ['id'],
                                 ondelete='RESTRICT')
        table.create_check_constraint(op.f('ck_products_option_named'),
                                      '(option_of IS NULL) = (option_label IS NULL)')
        table.create_index('ix_products_option_of', ['option_of'], unique=False)


def downgrade():
    with op.batch_alter_table('products') as table:
        table.drop_index('ix_products_option_of')
        table.drop_constraint(op.f('ck_products_option_named'), type_='check')
        table.drop_constraint(op.f('fk_products_option_of_products'), type_='foreignkey')
        table.drop_column('option_label')
        table.drop_column('option_of')
