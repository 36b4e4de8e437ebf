-- 038: the ordered funnel of the open day for the live dashboard (issue 28), by the very rules the
-- per-person-day summaries are built with (sql/037's analytics_person_day_rows), so the two can never drift.
--   * analytics_funnel_today(window): today's (UTC) ordered funnel in counts only: people who
--     viewed, then carted, then bought within the window, and the median seconds between steps,
--     computed as analytics.funnels aggregates the summaries. Bounded to today's partition; no user
--     id leaves it. dashboard_reader executes it and still reads no table of events (sql/024).

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
