-- storefront_place_hold, version 3 (migration 0010): version 2, and a "no" costs no lock.
-- While the product's units are gone, the refusal is one read: no product row lock, no
-- advisory lock, no write, so a crowd pressing Buy on a sold-out product neither queues
-- behind the paying shoppers nor makes them queue. It stays exact: the units of holds that
-- lapsed and are not released yet count as free here, as in the stock check, and they are
-- released only when a hold actually needs them (the locked path below, unchanged). The
-- owner's own live hold on the product still comes back (a 200), read without a lock too.
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
    v_available integer;
BEGIN
    -- A "no" from reads alone, with no lock taken and nothing written. The counters first (one
    -- row by its key): only when they say no are the lapsed holds' units added, and the
    -- owner's own hold looked for; a hold that fits pays for one key lookup more, no more.
    SELECT total_quantity - sold_units - held_units INTO v_available
      FROM products WHERE id = p_product AND archived_at IS NULL;
    IF FOUND AND v_available < p_quantity THEN
        v_available := v_available + (SELECT COALESCE(sum(quantity), 0) FROM holds
                                       WHERE product_id = p_product AND status = 'PENDING' AND expires_at <= v_now);
        IF v_available < p_quantity THEN
            SELECT * INTO v_hold FROM holds
             WHERE user_id = p_visitor AND browser_id = p_browser AND product_id = p_product
               AND status = 'PENDING' AND expires_at > v_now;
            IF FOUND THEN
                RETURN QUERY SELECT 'existing'::text, NULL::integer, v_hold;
            ELSE
                RETURN QUERY SELECT 'out_of_stock'::text, GREATEST(v_available, 0), NULL::holds;
            END IF;
            RETURN;
        END IF;
    END IF;

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
