-- storefront_place_hold, version 9 (migration 0023), the live one: version 8, and a draw. A
-- product sold by a draw (products.draw; an option carries its product's value) takes no hold:
-- 'draw_only', decided with the product's terms, having changed nothing; and a draw product with no
-- units left says 'draw_only' too, from reads alone. What follows is version 8's account:
--
-- storefront_place_hold, version 8 (migration 0019). Where this account names a
-- Python home that has moved since: the grant step under the product's lock is grant() in
-- inventory/grants.py; an address's /64 and /48 are owners.py's address_block(); its two
-- advisory locks' key spaces, 0 and 1, are storefront/locks.py's KeySpace.VISITOR and ADDRESS.
--
-- storefront_place_hold, version 8 (migration 0019): version 7, and what keeps a drop from
-- being cornered. A queued product's pass takes at most p_units_per_pass units ('pass_limit',
-- with that number). A paused product takes no hold ('paused'). A product with a limit per
-- buyer (products.per_buyer; an option carries its product's) counts what this owner holds
-- live and has bought of the product and all its options ('buyer_limit', with those units);
-- the delivery step and settlement count the same buyer by email and address
-- (orders/buyers.py). The hold rate (HOLD_RATE_LIMIT) is counted here first, before anything else
-- is decided, in the same statement as the hold: the sliding window counter of ratelimit.py, one
-- row a client address (this window's count and the last one's) in the UNLOGGED limit_windows (and one for its IPv6 /48): a
-- request past it is 'rate_limited' (storefront_count_hit, count_hit_v1.sql) (p_rate_key NULL: counted elsewhere, or not at all). A count
-- kept in a statement of its own cost a hold about 420 us of PostgreSQL's CPU and 300 us of the
-- app's (bench/holds.py); here it costs the upsert alone. An IPv6 client's /48 (p_block; NULL for IPv4) shares
-- p_max_block_units live units, IPV6_BLOCK_FACTOR times the address's, under its own lock taken
-- after the address's ('block_limit'). Each is decided after the visitor id's lock and before any unit is
-- taken, so a refusal changes nothing and leaves the pass unspent. What follows is version 7's
-- account:
--
-- storefront_place_hold, version 7 (migration 0018): version 6, and a drop's waiting room.
-- A hold on a queued product (products.queued; an option carries its product's value) needs
-- the owner's place in that product's queue (inventory/queue.py) to be admitted with a live
-- pass: otherwise 'not_admitted', having changed nothing. The pass is looked at before any
-- units are taken and spent (held_at) only once they are, in the same statement, so a hold
-- that ends 'needs_lock' or 'out_of_stock' leaves it unspent for the grant step. Both run
-- under the visitor id's lock, which every hold of this owner takes first. What follows is
-- version 6's account:
--
-- storefront_place_hold, version 6 (migration 0017): version 5, and a limit per client address.
-- Every owner behind one client address (inventory/holds.py: an IPv4 address or an IPv6 /64)
-- shares p_max_address_units live units, whatever visitor ids it sends: 'address_limit', with
-- the units that address holds. The address's own lock is taken after the visitor id's and
-- before any bucket's (the order every path keeps), so a crowd of requests from one address
-- is counted one at a time and cannot race past the limit; the "no" from reads alone still
-- takes no lock. What follows is version 5's account:
--
-- storefront_place_hold, version 5 (migration 0012): version 4, and a product's start time.
-- Before the product's starts_at (by the database's clock) a hold is 'not_on_sale', and the
-- start time comes back with it (the starts_at column). What follows is version 4's account:
--
-- storefront_place_hold, version 4 (migration 0011): a product's stock in bucket rows.
-- Holds on one product take their units from different rows of stock_buckets, so a crowd on
-- one product no longer queues on one row lock: a hold takes a bucket that has the units
-- and that no other transaction has locked (FOR UPDATE SKIP LOCKED, looking from a random
-- bucket on), and else waits for one such bucket. The rest runs under the product's row lock, in Python
-- (inventory/holds.py, _place_hold_under_product_lock): when no bucket has the units (they
-- are scattered over several, or lapsed holds still count), or the owner's lapsed hold must
-- give way, this function answers 'needs_lock' having changed nothing.
-- The "no" still takes no lock and writes nothing (version 3): one bucket with the units is
-- enough to go on, and the buckets are summed only when none has them.
CREATE OR REPLACE FUNCTION storefront_place_hold(
    p_id uuid, p_product integer, p_visitor varchar, p_browser varchar, p_address varchar, p_block varchar,
    p_quantity integer, p_ttl_seconds integer, p_max_units integer, p_max_address_units integer,
    p_max_block_units integer, p_units_per_pass integer,
    p_rate_key varchar, p_rate_block varchar, p_rate_window bigint, p_rate_weight double precision,
    p_rate_limit integer, p_rate_block_limit integer)
RETURNS TABLE (outcome text, detail integer, hold holds, starts_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
    v_hold holds;
    v_own integer;
    v_same_address integer;
    v_address_units integer;
    v_block_units integer;
    v_held_here boolean;
    v_lapsed_here boolean;
    v_price integer;
    v_currency varchar;
    v_available integer;
    v_bucket smallint;
    v_starts_at timestamptz;
    v_queue_of integer;
    v_entry uuid;
    v_paused boolean;
    v_draw boolean;
    v_per_buyer integer;
    v_family integer;
    v_bought integer;
    -- Where this hold starts looking: a random one of the first 64 buckets (inventory/stock.py:
    -- MAX_BUCKETS), so that holds arriving together try different rows first.
    v_start smallint := floor(random() * 64);
    v_hits integer;
    v_last integer;
BEGIN
    -- The hold rate, first: every request counts, refused or not (count_hit_v1.sql).
    IF p_rate_key IS NOT NULL THEN
        SELECT c.hits, c.last_hits INTO v_hits, v_last FROM storefront_count_hit('holds', p_rate_key, p_rate_window) c;
        IF v_last * p_rate_weight + v_hits > p_rate_limit THEN
            RETURN QUERY SELECT 'rate_limited'::text, NULL::integer, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
        IF p_rate_block IS NOT NULL THEN
            SELECT c.hits, c.last_hits INTO v_hits, v_last
              FROM storefront_count_hit('holds', p_rate_block, p_rate_window) c;
            IF v_last * p_rate_weight + v_hits > p_rate_block_limit THEN
                RETURN QUERY SELECT 'rate_limited'::text, NULL::integer, NULL::holds, NULL::timestamptz;
                RETURN;
            END IF;
        END IF;
    END IF;

    -- A "no" from reads alone, with no lock taken and nothing written. One bucket with the
    -- units is enough to go on (the first one read, as a rule); only when none has them are
    -- the buckets summed and the lapsed holds' units added, and the owner's own hold looked
    -- for. NULL (no such product, or archived) goes on, to 'not_found' below.
    PERFORM 1 FROM stock_buckets
     WHERE product_id = p_product AND bucket >= v_start AND total_units - held_units - sold_units >= p_quantity
     LIMIT 1;
    IF NOT FOUND THEN
        PERFORM 1 FROM stock_buckets
         WHERE product_id = p_product AND bucket < v_start AND total_units - held_units - sold_units >= p_quantity
         LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT sum(b.total_units - b.held_units - b.sold_units), max(p.starts_at), bool_or(p.draw)
          INTO v_available, v_starts_at, v_draw
          FROM stock_buckets b JOIN products p ON p.id = b.product_id
         WHERE b.product_id = p_product AND p.archived_at IS NULL;
        IF v_draw THEN
            RETURN QUERY SELECT 'draw_only'::text, NULL::integer, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
        IF v_starts_at > v_now THEN
            RETURN QUERY SELECT 'not_on_sale'::text, NULL::integer, NULL::holds, v_starts_at;
            RETURN;
        END IF;
    END IF;
    IF v_available < p_quantity THEN
        v_available := v_available + (SELECT COALESCE(sum(quantity), 0) FROM holds
                                       WHERE product_id = p_product AND status = 'PENDING' AND expires_at <= v_now);
        IF v_available < p_quantity THEN
            SELECT * INTO v_hold FROM holds
             WHERE user_id = p_visitor AND browser_id = p_browser AND product_id = p_product
               AND status = 'PENDING' AND expires_at > v_now;
            IF FOUND THEN
                RETURN QUERY SELECT 'existing'::text, NULL::integer, v_hold, NULL::timestamptz;
            ELSE
                RETURN QUERY SELECT 'out_of_stock'::text, GREATEST(v_available, 0), NULL::holds, NULL::timestamptz;
            END IF;
            RETURN;
        END IF;
    END IF;

    -- The visitor id's lock first (before any product's): its units are counted and added to under it.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_visitor, 0));

    -- One look at the visitor id's PENDING holds: the owner's own on this product (live, or
    -- lapsed and still holding the one-per-owner slot), and the live units that count against
    -- the limit (the owner's, and those asked from this address).
    SELECT COALESCE(sum(quantity) FILTER (WHERE browser_id = p_browser AND expires_at > v_now), 0),
           COALESCE(sum(quantity) FILTER (WHERE client_address = p_address AND expires_at > v_now), 0),
           COALESCE(bool_or(product_id = p_product AND browser_id = p_browser AND expires_at > v_now), false),
           COALESCE(bool_or(product_id = p_product AND browser_id = p_browser AND expires_at <= v_now), false)
      INTO v_own, v_same_address, v_held_here, v_lapsed_here
      FROM holds WHERE user_id = p_visitor AND status = 'PENDING';
    IF v_held_here THEN
        SELECT * INTO v_hold FROM holds
         WHERE product_id = p_product AND user_id = p_visitor AND browser_id = p_browser
           AND status = 'PENDING' AND expires_at > v_now;
        RETURN QUERY SELECT 'existing'::text, NULL::integer, v_hold, NULL::timestamptz;
        RETURN;
    END IF;
    IF GREATEST(v_own, v_same_address) + p_quantity > p_max_units THEN
        RETURN QUERY SELECT 'hold_limit'::text, GREATEST(v_own, v_same_address), NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_lapsed_here THEN
        RETURN QUERY SELECT 'needs_lock'::text, NULL::integer, NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;

    -- The address's lock, then every live unit held from it, by any owner, on any product. The
    -- expiry is a FILTER, not in the WHERE, as in the visitor's look above: a WHERE naming it would
    -- let a plan made on a quiet shop take ix_holds_pending_product_expiry and read every live
    -- hold of every product on every hold (seen: 2,700 buffers a hold once a drop filled it).
    PERFORM pg_advisory_xact_lock(hashtextextended(p_address, 1));
    SELECT COALESCE(sum(quantity) FILTER (WHERE expires_at > v_now), 0) INTO v_address_units
      FROM holds WHERE client_address = p_address AND status = 'PENDING';
    IF v_address_units + p_quantity > p_max_address_units THEN
        RETURN QUERY SELECT 'address_limit'::text, v_address_units, NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;
    IF p_block IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_block, 1));
        SELECT COALESCE(sum(quantity) FILTER (WHERE expires_at > v_now), 0) INTO v_block_units
          FROM holds WHERE client_block = p_block AND status = 'PENDING';
        IF v_block_units + p_quantity > p_max_block_units THEN
            RETURN QUERY SELECT 'block_limit'::text, v_block_units, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;

    SELECT price, currency, products.starts_at, CASE WHEN queued THEN COALESCE(option_of, id) END,
           paused, per_buyer, COALESCE(option_of, id), draw
      INTO v_price, v_currency, v_starts_at, v_queue_of, v_paused, v_per_buyer, v_family, v_draw
      FROM products WHERE id = p_product AND archived_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_draw THEN
        RETURN QUERY SELECT 'draw_only'::text, NULL::integer, NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_starts_at > v_now THEN
        RETURN QUERY SELECT 'not_on_sale'::text, NULL::integer, NULL::holds, v_starts_at;
        RETURN;
    END IF;
    IF v_paused THEN
        RETURN QUERY SELECT 'paused'::text, NULL::integer, NULL::holds, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_queue_of IS NOT NULL THEN
        SELECT id INTO v_entry FROM queue_entries
         WHERE product_id = v_queue_of AND user_id = p_visitor AND browser_id = p_browser AND left_at IS NULL
           AND admitted_at IS NOT NULL AND held_at IS NULL AND pass_expires_at > v_now;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'not_admitted'::text, v_queue_of, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
        IF p_quantity > p_units_per_pass THEN
            RETURN QUERY SELECT 'pass_limit'::text, p_units_per_pass, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;
    IF v_per_buyer IS NOT NULL THEN
        -- Under the visitor id's lock: this owner's other holds of the family wait for it.
        SELECT COALESCE(sum(h.quantity), 0) INTO v_bought
          FROM holds h JOIN products p ON p.id = h.product_id
         WHERE h.user_id = p_visitor AND h.browser_id = p_browser AND (p.id = v_family OR p.option_of = v_family)
           AND (h.status = 'COMPLETED' OR (h.status = 'PENDING' AND h.expires_at > v_now));
        IF v_bought + p_quantity > v_per_buyer THEN
            RETURN QUERY SELECT 'buyer_limit'::text, v_bought, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;

    -- A bucket with the units that nobody has locked, the first from a random one on (an index
    -- range that stops at the first it can take); else wait for one that had them (it is
    -- checked again once its lock is ours); else the product's lock is needed.
    UPDATE stock_buckets SET held_units = held_units + p_quantity
     WHERE product_id = p_product AND total_units - held_units - sold_units >= p_quantity
       AND bucket = COALESCE(
           (SELECT bucket FROM stock_buckets
             WHERE product_id = p_product AND bucket >= v_start AND total_units - held_units - sold_units >= p_quantity
             ORDER BY bucket LIMIT 1 FOR UPDATE SKIP LOCKED),
           (SELECT bucket FROM stock_buckets
             WHERE product_id = p_product AND bucket < v_start AND total_units - held_units - sold_units >= p_quantity
             ORDER BY bucket LIMIT 1 FOR UPDATE SKIP LOCKED))
    RETURNING bucket INTO v_bucket;
    IF NOT FOUND THEN
        UPDATE stock_buckets SET held_units = held_units + p_quantity
         WHERE product_id = p_product AND total_units - held_units - sold_units >= p_quantity
           AND bucket = (SELECT bucket FROM stock_buckets
                          WHERE product_id = p_product AND total_units - held_units - sold_units >= p_quantity
                          ORDER BY random() LIMIT 1 FOR UPDATE)
        RETURNING bucket INTO v_bucket;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'needs_lock'::text, NULL::integer, NULL::holds, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;

    IF v_queue_of IS NOT NULL THEN
        UPDATE queue_entries SET held_at = v_now WHERE id = v_entry;
    END IF;
    INSERT INTO holds (id, product_id, bucket, user_id, browser_id, client_address, client_block, quantity, amount,
                       currency, status, expires_at, created_at, updated_at)
    VALUES (p_id, p_product, v_bucket, p_visitor, p_browser, p_address, p_block, p_quantity, v_price * p_quantity,
            v_currency, 'PENDING', v_now + make_interval(secs => p_ttl_seconds), v_now, v_now)
    RETURNING * INTO v_hold;
    RETURN QUERY SELECT 'created'::text, NULL::integer, v_hold, NULL::timestamptz;
END;
$$;
