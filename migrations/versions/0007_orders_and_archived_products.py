"""Products can be archived; orders keep delivery details, payment, shipping and confirmation.

An archived product leaves the catalogue and takes no new holds (the hold function
now says not_found for it); its live holds still complete or lapse, and its orders
and history stay. An order is a hold or a checkout (same id) once the shopper gives
delivery details or pays.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

from storefront.clock import UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UNCONFIRMED = sa.text("paid_at IS NOT NULL AND email IS NOT NULL AND confirmation_sent_at IS NULL")

PLACE_HOLD = r"""
CREATE OR REPLACE FUNCTION storefront_place_hold(
    p_id uuid, p_product integer, p_visitor varchar, p_browser varchar, p_address varchar,
    p_quantity integer, p_ttl_seconds integer, p_max_units integer)
RETURNS TABLE (outcome text, detail integer, hold holds)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
    v_hold holds;
    v_own integer;
    v_same_address integer;
    v_held_here boolean;
    v_price integer;
    v_currency varchar;
    v_freed integer;
BEGIN
    -- The visitor id's lock first (before any product's): its units are counted and added to under it.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_visitor, 0));

    -- One look at the visitor id's live holds: the owner's own on this product, and the units
    -- that count against the limit (the owner's, and those asked from this address).
    SELECT COALESCE(sum(quantity) FILTER (WHERE browser_id = p_browser), 0),
           COALESCE(sum(quantity) FILTER (WHERE client_address = p_address), 0),
           COALESCE(bool_or(product_id = p_product AND browser_id = p_browser), false)
      INTO v_own, v_same_address, v_held_here
      FROM holds WHERE user_id = p_visitor AND status = 'PENDING' AND expires_at > v_now;
    IF v_held_here THEN
        SELECT * INTO v_hold FROM holds
         WHERE product_id = p_product AND user_id = p_visitor AND browser_id = p_browser
           AND status = 'PENDING' AND expires_at > v_now;
        RETURN QUERY SELECT 'existing'::text, NULL::integer, v_hold;
        RETURN;
    END IF;
    IF GREATEST(v_own, v_same_address) + p_quantity > p_max_units THEN
        RETURN QUERY SELECT 'hold_limit'::text, GREATEST(v_own, v_same_address), NULL::holds;
        RETURN;
    END IF;

    UPDATE products SET held_units = held_units + p_quantity
     WHERE id = p_product AND archived_at IS NULL AND total_quantity - sold_units - held_units >= p_quantity
    RETURNING price, currency INTO v_price, v_currency;
    IF NOT FOUND THEN
        -- The counters still count lapsed holds not swept yet: release them, then look again.
        PERFORM 1 FROM products WHERE id = p_product AND archived_at IS NULL FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::holds;
            RETURN;
        END IF;
        WITH lapsed AS (
            UPDATE holds SET status = 'EXPIRED', updated_at = v_now
             WHERE product_id = p_product AND status = 'PENDING' AND expires_at <= v_now
            RETURNING quantity)
        SELECT COALESCE(sum(quantity), 0) INTO v_freed FROM lapsed;
        UPDATE products SET held_units = held_units - v_freed + p_quantity
         WHERE id = p_product AND total_quantity - sold_units - held_units + v_freed >= p_quantity
        RETURNING price, currency INTO v_price, v_currency;
        IF NOT FOUND THEN
            IF v_freed > 0 THEN
                UPDATE products SET held_units = held_units - v_freed WHERE id = p_product;
            END IF;
            RETURN QUERY SELECT 'out_of_stock'::text,
                   (SELECT GREATEST(total_quantity - sold_units - held_units, 0) FROM products WHERE id = p_product),
                   NULL::holds;
            RETURN;
        END IF;
    END IF;

    INSERT INTO holds (id, product_id, user_id, browser_id, client_address, quantity, amount, currency, status,
                       expires_at, created_at, updated_at)
    VALUES (p_id, p_product, p_visitor, p_browser, p_address, p_quantity, v_price * p_quantity, v_currency,
            'PENDING', v_now + make_interval(secs => p_ttl_seconds), v_now, v_now)
    ON CONFLICT (product_id, user_id, browser_id) WHERE status = 'PENDING' DO NOTHING
    RETURNING * INTO v_hold;
    IF NOT FOUND THEN
        -- The owner's lapsed hold on this product still says PENDING and holds the slot: it gives way.
        WITH lapsed AS (
            UPDATE holds SET status = 'EXPIRED', updated_at = v_now
             WHERE product_id = p_product AND user_id = p_visitor AND browser_id = p_browser
               AND status = 'PENDING' AND expires_at <= v_now
            RETURNING quantity)
        SELECT COALESCE(sum(quantity), 0) INTO v_freed FROM lapsed;
        UPDATE products SET held_units = held_units - v_freed WHERE id = p_product;
        INSERT INTO holds (id, product_id, user_id, browser_id, client_address, quantity, amount, currency, status,
                           expires_at, created_at, updated_at)
        VALUES (p_id, p_product, p_visitor, p_browser, p_address, p_quantity, v_price * p_quantity, v_currency,
                'PENDING', v_now + make_interval(secs => p_ttl_seconds), v_now, v_now)
        RETURNING * INTO v_hold;
    END IF;
    RETURN QUERY SELECT 'created'::text, NULL::integer, v_hold;
END;
$$;
"""


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_at', UTCDateTime(), nullable=True))
    op.create_table(
        'orders',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('browser_id', sa.String(length=64), server_default='', nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('ship_name', sa.String(length=200), nullable=True),
        sa.Column('ship_line1', sa.String(length=200), nullable=True),
        sa.Column('ship_line2', sa.String(length=200), nullable=True),
        sa.Column('ship_city', sa.String(length=100), nullable=True),
        sa.Column('ship_state', sa.String(length=100), nullable=True),
        sa.Column('ship_postal_code', sa.String(length=20), nullable=True),
        sa.Column('ship_country', sa.String(length=2), nullable=True),
        sa.Column('paid_at', UTCDateTime(), nullable=True),
        sa.Column('shipped_at', UTCDateTime(), nullable=True),
        sa.Column('tracking_reference', sa.String(length=100), nullable=True),
        sa.Column('confirmation_sent_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('hold', 'checkout')", name=op.f('ck_orders_kind_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_paid_shipped', ['paid_at', 'shipped_at'], unique=False)
        batch_op.create_index('ix_orders_unconfirmed', ['paid_at'], unique=False,
                              postgresql_where=UNCONFIRMED, sqlite_where=UNCONFIRMED)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_HOLD)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_HOLD.replace(" AND archived_at IS NULL", ""))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_unconfirmed', postgresql_where=UNCONFIRMED, sqlite_where=UNCONFIRMED)
        batch_op.drop_index('ix_orders_paid_shipped')
    op.drop_table('orders')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('archived_at')
