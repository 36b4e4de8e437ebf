-- 041: rollups of the per-person-day summaries (sql/037), so retention and the customer histories
-- read rows bounded by people (x weeks), not by person-days, which grow with traffic nearly as
-- fast as events do (issue 28, "flat with history").
--   * analytics_person_weeks: one row per person and ISO week (its Monday) with a summarised day:
--     active days, purchase days, purchases, revenue, the first and last purchase day of the week
--     (and the first one's revenue), the last active day. Retention reads activity per week here.
--   * analytics_person_totals: one row per person with a summarised day: the same over all their
--     weeks. The customer histories read it when the whole history is asked for (no holdout).
--   * analytics_rollup_people(users, weeks): recomputes those people's rows of those weeks from the
--     summaries, then their totals from their weeks. Idempotent: rows are replaced, never added to.
--   * analytics_build_person_days (sql/037) now rolls the day's people (before and after the
--     rebuild) up in the same transaction, so a late day rebuilt replaces its people's week and
--     totals; a person whose last row of a week went away loses that week's row.
--   * analytics_rollups_drop_before(cutoff): retention (gdpr.retention) drops the weeks before the
--     cutoff's and recomputes the cutoff's week and the totals of the people it touched.
-- Pseudonymous like the summaries: read by the analytics logins only; an erasure re-keys the rows
-- in its transaction (analytics.summaries.rekey).

CREATE TABLE IF NOT EXISTS analytics_person_weeks (
    week                   DATE NOT NULL CHECK (extract(isodow FROM week) = 1),
    user_id                UUID NOT NULL,
    active_days            INTEGER NOT NULL,
    purchase_days          INTEGER NOT NULL,
    purchases              INTEGER NOT NULL,
    revenue                NUMERIC(38, 2) NOT NULL,
    first_purchase         DATE,
    first_purchase_revenue NUMERIC(38, 2),
    last_purchase          DATE,
    last_active            DATE NOT NULL,
    PRIMARY KEY (week, user_id)
);
-- The rollup of a person's totals and the erasure's re-keying read by person.
CREATE INDEX IF NOT EXISTS analytics_person_weeks_user_idx ON analytics_person_weeks (user_id, week);

CREATE TABLE IF NOT EXISTS analytics_person_totals (
    user_id                UUID PRIMARY KEY,
    purchase_days          INTEGER NOT NULL,
    purchases              INTEGER NOT NULL,
    revenue                NUMERIC(38, 2) NOT NULL,
    first_purchase         DATE,
    first_purchase_revenue NUMERIC(38, 2),
    last_purchase          DATE,
    last_active            DATE NOT NULL
);
-- Cohorts by first purchase read the buyers only.
CREATE INDEX IF NOT EXISTS analytics_person_totals_first_purchase_idx ON analytics_person_totals (first_purchase)
    WHERE first_purchase IS NOT NULL;

CREATE OR REPLACE FUNCTION analytics_rollup_people(p_users UUID[], p_weeks DATE[]) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- The people as a relation (a hash join), not "= ANY(array)": a parameter array is searched
    -- linearly per row, thousands of people times a week's summaries.
    DELETE FROM analytics_person_weeks AS w USING unnest(p_users) AS u (user_id), unnest(p_weeks) AS k (week)
    WHERE w.user_id = u.user_id AND w.week = k.week;
    INSERT INTO analytics_person_weeks (week, user_id, active_days, purchase_days, purchases, revenue, first_purchase,
                                        first_purchase_revenue, last_purchase, last_active)
    SELECT w.week, d.user_id, count(*), count(*) FILTER (WHERE d.purchases > 0), sum(d.purchases), sum(d.revenue),
           min(d.event_date) FILTER (WHERE d.purchases > 0),
           (array_agg(d.revenue ORDER BY d.event_date) FILTER (WHERE d.purchases > 0))[1],
           max(d.event_date) FILTER (WHERE d.purchases > 0), max(d.event_date)
    FROM unnest(p_weeks) AS w (week)
    JOIN analytics_person_days AS d ON d.event_date BETWEEN w.week AND w.week + 6
    JOIN (SELECT DISTINCT unnest(p_users)) AS u (user_id) ON u.user_id = d.user_id
    GROUP BY w.week, d.user_id;

    DELETE FROM analytics_person_totals AS t USING unnest(p_users) AS u (user_id) WHERE t.user_id = u.user_id;
    INSERT INTO analytics_person_totals (user_id, purchase_days, purchases, revenue, first_purchase, first_purchase_revenue,
                                         last_purchase, last_active)
    SELECT w.user_id, sum(w.purchase_days), sum(w.purchases), sum(w.revenue), min(w.first_purchase),
           (array_agg(w.first_purchase_revenue ORDER BY w.first_purchase) FILTER (WHERE w.first_purchase IS NOT NULL))[1],
           max(w.last_purchase), max(w.last_active)
    FROM analytics_person_weeks AS w JOIN (SELECT DISTINCT unnest(p_users)) AS u (user_id) ON u.user_id = w.user_id
    GROUP BY w.user_id;
END;
$$;
REVOKE ALL ON FUNCTION analytics_rollup_people(UUID[], DATE[]) FROM PUBLIC;

-- sql/037's build, with its people rolled up in the same transaction.
CREATE OR REPLACE FUNCTION analytics_build_person_days(p_day DATE, p_window_s INTEGER) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    built INTEGER;
    people UUID[];
BEGIN
    IF p_window_s IS NULL OR p_window_s < 1 OR p_window_s > 86400 THEN
        RAISE EXCEPTION 'a funnel window is 1 to 86400 seconds, not %', p_window_s USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (DELETE FROM analytics_person_days WHERE event_date = p_day RETURNING user_id)
    SELECT coalesce(array_agg(user_id), '{}') INTO people FROM gone;
    INSERT INTO analytics_person_days (event_date, user_id, page_views, add_to_carts, purchases, revenue, funnel_step,
                                       view_to_cart_s, cart_to_purchase_s)
    SELECT p_day, r.user_id, r.page_views, r.add_to_carts, r.purchases, r.revenue, r.funnel_step,
           r.view_to_cart_s, r.cart_to_purchase_s
    FROM analytics_person_day_rows(p_day, p_window_s) AS r;
    GET DIAGNOSTICS built = ROW_COUNT;
    SELECT array_agg(DISTINCT u) INTO people
    FROM (SELECT unnest(people) UNION ALL SELECT user_id FROM analytics_person_days WHERE event_date = p_day) AS a (u);
    IF people IS NOT NULL THEN
        PERFORM analytics_rollup_people(people, ARRAY[date_trunc('week', p_day)::date]);
    END IF;
    INSERT INTO analytics_person_days_built (event_date, funnel_window_s, people) VALUES (p_day, p_window_s, built)
    ON CONFLICT (event_date) DO UPDATE SET funnel_window_s = EXCLUDED.funnel_window_s, people = EXCLUDED.people,
                                           built_at = now();
    RETURN built;
END;
$$;
REVOKE ALL ON FUNCTION analytics_build_person_days(DATE, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_build_person_days(DATE, INTEGER) TO batch_writer;

-- Retention has dropped the summaries before p_cutoff: their weeks go, the cutoff's own week (when
-- the cutoff is not a Monday) is recomputed from the days left, and so are the totals of everyone
-- those weeks held.
CREATE OR REPLACE FUNCTION analytics_rollups_drop_before(p_cutoff DATE) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    cut_week DATE := date_trunc('week', p_cutoff)::date;
    people UUID[];
BEGIN
    WITH gone AS (
        DELETE FROM analytics_person_weeks WHERE week < cut_week OR (week = cut_week AND cut_week < p_cutoff) RETURNING user_id
    )
    SELECT array_agg(DISTINCT user_id) INTO people FROM gone;
    IF people IS NOT NULL THEN
        PERFORM analytics_rollup_people(people, CASE WHEN cut_week < p_cutoff THEN ARRAY[cut_week] ELSE '{}'::date[] END);
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION analytics_rollups_drop_before(DATE) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_rollups_drop_before(DATE) TO retention_worker;

-- The rollups of the summaries built before this migration.
INSERT INTO analytics_person_weeks (week, user_id, active_days, purchase_days, purchases, revenue, first_purchase,
                                    first_purchase_revenue, last_purchase, last_active)
SELECT date_trunc('week', event_date)::date, user_id, count(*), count(*) FILTER (WHERE purchases > 0), sum(purchases),
       sum(revenue), min(event_date) FILTER (WHERE purchases > 0),
       (array_agg(revenue ORDER BY event_date) FILTER (WHERE purchases > 0))[1],
       max(event_date) FILTER (WHERE purchases > 0), max(event_date)
FROM analytics_person_days GROUP BY 1, 2
ON CONFLICT DO NOTHING;
INSERT INTO analytics_person_totals (user_id, purchase_days, purchases, revenue, first_purchase, first_purchase_revenue,
                                     last_purchase, last_active)
SELECT user_id, sum(purchase_days), sum(purchases), sum(revenue), min(first_purchase),
       (array_agg(first_purchase_revenue ORDER BY first_purchase) FILTER (WHERE first_purchase IS NOT NULL))[1],
       max(last_purchase), max(last_active)
FROM analytics_person_weeks GROUP BY user_id
ON CONFLICT DO NOTHING;

GRANT SELECT ON analytics_person_weeks, analytics_person_totals TO analytics_reader, analytics_modeller;
-- Erasure: the person's rows move to their new random id with their events and summaries.
GRANT SELECT (user_id), UPDATE (user_id) ON analytics_person_weeks, analytics_person_totals TO gdpr_processor;
