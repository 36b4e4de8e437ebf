-- 038: the ordered funnel of the open day for the live dashboard (issue 28), by the very rules the
-- per-person-day summaries are built with, so the two can never drift.
--   * analytics_person_day_rows(day, window): the summary rows of one day computed from events_raw
--     and returned, not written: sql/037's build, moved here unchanged. Only its owner runs it (it
--     returns user ids): through the two functions below.
--   * analytics_build_person_days(day, window): as in sql/037 (the batch job's rebuild of a closed
--     day), now inserting what analytics_person_day_rows returns.
--   * analytics_funnel_today(window): today's (UTC) ordered funnel in counts only: people who
--     viewed, then carted, then bought within the window, and the median seconds between steps,
--     computed as analytics.funnels aggregates the summaries. Bounded to today's partition; no user
--     id leaves it. dashboard_reader executes it and still reads no table of events (sql/024).

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

CREATE OR REPLACE FUNCTION analytics_funnel_today(p_window_s INTEGER)
RETURNS TABLE (day DATE, viewed BIGINT, carted BIGINT, bought BIGINT, median_view_to_cart_s DOUBLE PRECISION,
               median_cart_to_purchase_s DOUBLE PRECISION)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    today DATE := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    IF p_window_s IS NULL OR p_window_s < 1 OR p_window_s > 86400 THEN
        RAISE EXCEPTION 'a funnel window is 1 to 86400 seconds, not %', p_window_s USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT today, count(*) FILTER (WHERE s.funnel_step >= 1), count(*) FILTER (WHERE s.funnel_step >= 2),
           count(*) FILTER (WHERE s.funnel_step >= 3),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY s.view_to_cart_s) FILTER (WHERE s.funnel_step >= 2),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY s.cart_to_purchase_s) FILTER (WHERE s.funnel_step >= 3)
    FROM analytics_person_day_rows(today, p_window_s) AS s WHERE s.funnel_step >= 1;
END;
$$;
REVOKE ALL ON FUNCTION analytics_funnel_today(INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_funnel_today(INTEGER) TO dashboard_reader;
