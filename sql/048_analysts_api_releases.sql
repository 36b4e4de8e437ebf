-- 048: the analysts' API releases (issue 29). Its login joins privacy_releaser (sql/043), so it
-- locks budgets, appends to the privacy ledger and reads the ledger and the budgets (the DPO's
-- endpoints), and privacy_releaser reads what the API's releases are computed from, beside the
-- day summaries and the country it read already:
--   * analytics_person_days.funnel_step: the ordered funnel's furthest step of each person-day;
--   * users_public.signup_date: the retention release's cohorts (a person's signup week);
--   * analytics_person_weeks (week, user_id): who was active in which week after signing up;
--   * analytics_rfm_scores (user_id, segment, monetary): RFM segment sizes and values;
--   * analytics_clv_scores (user_id, clv): lifetime value by segment.
-- Only those columns: the releases bound and noise them (analytics.dp); nothing per person leaves.
-- analyst_accounts.requested_epsilon (sql/045) is no longer written: `analytics.accounts create
-- --budget` sets the analyst's budget in privacy_budgets (analytics.ledger.set_budget).

GRANT SELECT (funnel_step) ON analytics_person_days TO privacy_releaser;
GRANT SELECT (user_id, signup_date) ON users_public TO privacy_releaser;
GRANT SELECT (week, user_id) ON analytics_person_weeks TO privacy_releaser;
GRANT SELECT (user_id, segment, monetary) ON analytics_rfm_scores TO privacy_releaser;
GRANT SELECT (user_id, clv) ON analytics_clv_scores TO privacy_releaser;
GRANT privacy_releaser TO analysts_api;
