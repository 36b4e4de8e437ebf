-- 037: per-person-day summaries for the analyses of analytics/ (issue 28): retention cohorts, the
-- ordered funnel and per-person purchase histories read these small rows, never a scan of
-- events_raw. One row per person and closed UTC day with any event.
--   * analytics_person_days: the day's counts per event type, the purchases' revenue, and the
--     ordered funnel of that person-day: the furthest step reached in order (0 no page view,
--     1 a page view, 2 then an add_to_cart, 3 then a purchase), each step at or after the one
--     before, all within funnel_window_s of the page view and on the page view's own UTC day;
--     and the seconds view->cart and cart->purchase of that sequence (docs/analytics.md says
--     which sequence when there are several). Pseudonymous data like events_raw: read by the
--     analytics login only, never joined to users_pii; an erasure re-keys the rows with the
--     events (gdpr.erasure), retention drops the rows of the days it drops (gdpr.retention).
--   * analytics_person_days_built: the days summarised, with the funnel window each was built
--     with (a funnel query for another window is refused: analytics.funnels).
--   * analytics_person_day_rows(day, window): a day's rows computed from events_raw, returned not
--     written; the one statement of the rules (the dashboard's open-day funnel uses it too, sql/038).
--   * analytics_build_person_days(day, window): rebuilds one day from events_raw, as its owner,
--     in the caller's transaction (the batch job's recompute of the day: batch.metrics.close_day).
--     batch_writer executes it and still reads no user_id itself ("never who", sql/015).

CREATE TABLE IF NOT EXISTS analytics_person_days (
    event_date        DATE NOT NULL,
    user_id           UUID NOT NULL,
    page_views        INTEGER NOT NULL,
    add_to_carts      INTEGER NOT NULL,
    purchases         INTEGER NOT NULL,
    revenue           NUMERIC(38, 2) NOT NULL,
    funnel_step       SMALLINT NOT NULL CHECK (funnel_step BETWEEN 0 AND 3),
    view_to_cart_s    NUMERIC(16, 6),
    cart_to_purchase_s NUMERIC(16, 6),
    PRIMARY KEY (event_date, user_id)
);
-- Erasure re-keys by user_id; per-person histories (analytics.customers) read by it.
CREATE INDEX IF NOT EXISTS analytics_person_days_user_idx ON analytics_person_days (user_id, event_date);

CREATE TABLE IF NOT EXISTS analytics_person_days_built (
    event_date      DATE PRIMARY KEY,
    funnel_window_s INTEGER NOT NULL CHECK (funnel_window_s > 0),
    people          INTEGER NOT NULL,
    built_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A day's summary rows computed from events_raw and returned, not written. Only its owner runs it
-- (it returns user ids): through the build below and the dashboard's open-day funnel (sql/038).
CREATE OR REPLACE FUNCTION analytics_person_day_rows(p_day DATE, p_window_s INTEGER)
RETURNS TABLE (user_id UUID, page_views BIGINT, add_to_carts BIGINT, purchases BIGINT, revenue NUMERIC,
               funnel_step INTEGER, view_to_cart_s NUMERIC(16, 6), cart_to_purchase_s NUMERIC(16, 6))
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    WITH ev AS (
        SELECT user_id, event_type, event_timestamp AS ts, amount FROM events_raw WHERE event_date = p_day
    ), marked AS (
        -- For every event: the first add_to_cart and the first purchase at or after its time (RANGE
        -- takes the events of the same instant in: "at or after").
        SELECT user_id, event_type, ts,
               min(ts) FILTER (WHERE event_type = 'add_to_cart') OVER later AS next_cart,
               min(ts) FILTER (WHERE event_type = 'purchase') OVER later AS next_purchase
        FROM ev
        WINDOW later AS (PARTITION BY user_id ORDER BY ts DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ), carts AS (
        SELECT DISTINCT user_id, ts, next_purchase FROM marked WHERE event_type = 'add_to_cart'
    ), sequences AS (
        -- From each page view: its first cart within the window, then that cart's first purchase
        -- within the window (the earliest cart leaves the most room for a purchase after it).
        SELECT v.user_id, v.ts AS viewed, c.ts AS carted,
               CASE WHEN c.next_purchase <= v.ts + make_interval(secs => p_window_s) THEN c.next_purchase END AS bought
        FROM marked AS v
        LEFT JOIN carts AS c
          ON c.user_id = v.user_id AND c.ts = v.next_cart AND v.next_cart <= v.ts + make_interval(secs => p_window_s)
        WHERE v.event_type = 'page_view'
    ), best AS (
        -- A person-day's sequence: the furthest step, then the one completed first, then the
        -- latest page view before it (the view that led to the cart).
        SELECT DISTINCT ON (user_id) user_id,
               CASE WHEN bought IS NOT NULL THEN 3 WHEN carted IS NOT NULL THEN 2 ELSE 1 END AS step,
               extract(epoch FROM carted - viewed)::numeric(16, 6) AS view_to_cart_s,
               extract(epoch FROM bought - carted)::numeric(16, 6) AS cart_to_purchase_s
        FROM sequences
        ORDER BY user_id, (bought IS NOT NULL) DESC, (carted IS NOT NULL) DESC, coalesce(bought, carted, viewed), viewed DESC
    ), totals AS (
        SELECT user_id,
               count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
               count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
               count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
               coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS revenue
        FROM ev GROUP BY user_id
    )
    SELECT t.user_id, t.page_views, t.add_to_carts, t.purchases, t.revenue, coalesce(b.step, 0),
           b.view_to_cart_s, b.cart_to_purchase_s
    FROM totals AS t LEFT JOIN best AS b USING (user_id)
$$;
REVOKE ALL ON FUNCTION analytics_person_day_rows(DATE, INTEGER) FROM PUBLIC;

CREATE OR REPLACE FUNCTION analytics_build_person_days(p_day DATE, p_window_s INTEGER) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    built INTEGER;
BEGIN
    IF p_window_s IS NULL OR p_window_s < 1 OR p_window_s > 86400 THEN
        RAISE EXCEPTION 'a funnel window is 1 to 86400 seconds, not %', p_window_s USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM analytics_person_days WHERE event_date = p_day;
    INSERT INTO analytics_person_days (event_date, user_id, page_views, add_to_carts, purchases, revenue, funnel_step,
                                       view_to_cart_s, cart_to_purchase_s)
    SELECT p_day, r.user_id, r.page_views, r.add_to_carts, r.purchases, r.revenue, r.funnel_step,
           r.view_to_cart_s, r.cart_to_purchase_s
    FROM analytics_person_day_rows(p_day, p_window_s) AS r;
    GET DIAGNOSTICS built = ROW_COUNT;
    INSERT INTO analytics_person_days_built (event_date, funnel_window_s, people) VALUES (p_day, p_window_s, built)
    ON CONFLICT (event_date) DO UPDATE SET funnel_window_s = EXCLUDED.funnel_window_s, people = EXCLUDED.people,
                                           built_at = now();
    RETURN built;
END;
$$;
REVOKE ALL ON FUNCTION analytics_build_person_days(DATE, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_build_person_days(DATE, INTEGER) TO batch_writer;

-- The batch job holds the erasure lock shared while it rebuilds a day, as an ingest batch does:
-- an erasure's re-keying never interleaves with a build that read the events before it.
INSERT INTO platform_lock_grants (name, grantee, exclusive) VALUES ('erasure', 'batch_writer', false) ON CONFLICT DO NOTHING;
GRANT EXECUTE ON FUNCTION platform_lock(TEXT, BOOLEAN, INTEGER) TO batch_writer;

GRANT SELECT ON analytics_person_days, analytics_person_days_built TO analytics_reader;
GRANT SELECT (event_date) ON analytics_person_days_built TO batch_writer;
-- Erasure: the person's rows move to their new random id with their events.
GRANT SELECT (user_id), UPDATE (user_id) ON analytics_person_days TO gdpr_processor;
-- Storage limitation: the rows of the days whose raw events retention drops.
GRANT SELECT (event_date), DELETE ON analytics_person_days, analytics_person_days_built TO retention_worker;
