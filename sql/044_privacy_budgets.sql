-- 044: privacy budgets (issue 29): how much privacy loss (epsilon, pure DP) each analyst, and all of
-- them together (the analyst '*'), may spend per period (a calendar year by default, in UTC). Set by
-- the DPO (`python -m gdpr.dpo budget set`, as the console's login); every change is kept in
-- privacy_budget_changes (append-only). A period's spending is the sum of the ledger's epsilons
-- since the period began (basic composition of pure-DP releases, as OpenDP's sequential
-- compositor adds them).
--   * privacy_budget_reserve(analyst, epsilon): locks the analyst's and the overall budget rows
--     (FOR UPDATE, in the caller's transaction, always in the same order) and returns each one's
--     limit and spending, so two releases racing for the last of a budget are serialised: the
--     second sees the first's ledger row once the first commits. SECURITY DEFINER: the releasers
--     may not update budgets, only lock them through it.

CREATE TABLE IF NOT EXISTS privacy_budgets (
    analyst  TEXT PRIMARY KEY CHECK (length(analyst) BETWEEN 1 AND 200),
    epsilon  NUMERIC(20, 10) NOT NULL CHECK (epsilon >= 0),
    period   TEXT NOT NULL DEFAULT 'year' CHECK (period IN ('year', 'quarter', 'month', 'week', 'day')),
    set_by   TEXT NOT NULL,
    set_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS privacy_budget_changes (
    id       BIGSERIAL PRIMARY KEY,
    analyst  TEXT NOT NULL,
    epsilon  NUMERIC(20, 10) NOT NULL,
    period   TEXT NOT NULL,
    set_by   TEXT NOT NULL,
    set_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
DROP TRIGGER IF EXISTS privacy_budget_changes_no_change ON privacy_budget_changes;
CREATE TRIGGER privacy_budget_changes_no_change BEFORE UPDATE OR DELETE ON privacy_budget_changes
    FOR EACH ROW EXECUTE FUNCTION privacy_ledger_is_append_only();
DROP TRIGGER IF EXISTS privacy_budget_changes_no_truncate ON privacy_budget_changes;
CREATE TRIGGER privacy_budget_changes_no_truncate BEFORE TRUNCATE ON privacy_budget_changes
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_ledger_is_append_only();

CREATE OR REPLACE FUNCTION privacy_budget_reserve(p_analyst TEXT)
RETURNS TABLE (analyst TEXT, epsilon NUMERIC, period TEXT, period_start TIMESTAMPTZ, spent NUMERIC)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM 1 FROM privacy_budgets b WHERE b.analyst IN (p_analyst, '*') ORDER BY b.analyst FOR UPDATE;
    RETURN QUERY
    SELECT b.analyst, b.epsilon, b.period, date_trunc(b.period, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           coalesce((SELECT sum(l.epsilon) FROM privacy_ledger l
                     WHERE (b.analyst = '*' OR l.analyst = b.analyst)
                       AND l.at >= date_trunc(b.period, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0)
    FROM privacy_budgets b WHERE b.analyst IN (p_analyst, '*') ORDER BY b.analyst;
END;
$$;
REVOKE ALL ON FUNCTION privacy_budget_reserve(TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION privacy_budget_reserve(TEXT) TO privacy_releaser;

REVOKE ALL ON privacy_budgets, privacy_budget_changes FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON privacy_budgets TO dpo_console;
GRANT SELECT, INSERT ON privacy_budget_changes TO dpo_console;
GRANT USAGE ON SEQUENCE privacy_budget_changes_id_seq TO dpo_console;
GRANT SELECT ON privacy_budgets, privacy_budget_changes TO privacy_releaser, privacy_auditor;
