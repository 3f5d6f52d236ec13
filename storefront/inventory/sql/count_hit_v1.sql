-- storefront_count_hit, version 1 (migration 0019): one request counted against a rate limit, in
-- the sliding window counter storefront/ratelimit.py reads (DatabaseLimiter): one row a key in the
-- UNLOGGED limit_windows with this window's count and the last one's, brought forward as windows
-- pass. One upsert, under the row's lock; returns both counts after this request. The hold
-- function counts HOLD_RATE_LIMIT with it in the hold's own statement; checkouts and cart changes
-- call it on their own. A window older than the row's (a host a little behind) counts in the row's.
CREATE OR REPLACE FUNCTION storefront_count_hit(p_scope varchar, p_key varchar, p_window bigint)
RETURNS TABLE (hits integer, last_hits integer)
LANGUAGE sql AS $$
    INSERT INTO limit_windows AS w (scope, key, window_start, hits, last_hits)
    VALUES (p_scope, p_key, p_window, 1, 0)
    ON CONFLICT (scope, key) DO UPDATE SET
        last_hits = CASE WHEN w.window_start >= p_window THEN w.last_hits
                         WHEN w.window_start = p_window - 1 THEN w.hits ELSE 0 END,
        hits = CASE WHEN w.window_start >= p_window THEN w.hits + 1 ELSE 1 END,
        window_start = GREATEST(w.window_start, p_window)
    RETURNING w.hits, w.last_hits;
$$;
