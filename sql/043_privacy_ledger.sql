-- 043: the privacy ledger (issue 29): one row for every differentially private release that leaves
-- the pseudonymous zone (analytics.ledger writes it in the release's transaction), with its analyst,
-- query and parameters, mechanism, noise scales and privacy loss (epsilon, pure DP).
--   * Append-only like the audit trail (sql/003): no UPDATE, DELETE or TRUNCATE, for anyone but the
--     owner with the triggers off.
--   * Hash-chained like the audit trail (sql/013, sql/031): each row carries the hash of the row
--     before it and its own, SHA-256 over the previous hash and its fields; `python -m
--     gdpr.verify_audit` recomputes the chain in Python and names the first broken row. The chain
--     trigger is SECURITY DEFINER and serialises writers with a self-conflicting lock on the ledger
--     itself, so id order is chain order.
--   * privacy_releaser: the group role of whoever releases (the reports' login analytics_reader is
--     a member; the analysts' API's login joins it in its own migration): it reads the summaries and
--     the public profile's country, appends to the ledger and reads it (the budget's spending).

SELECT platform_group_role('privacy_releaser');

CREATE TABLE IF NOT EXISTS privacy_ledger (
    id          BIGSERIAL PRIMARY KEY,
    analyst     TEXT NOT NULL CHECK (length(analyst) BETWEEN 1 AND 200),
    query       TEXT NOT NULL CHECK (length(query) BETWEEN 1 AND 200),
    mechanism   TEXT NOT NULL,
    -- the privacy loss under pure DP (basic composition: a period's spending is the sum)
    epsilon     NUMERIC(20, 10) NOT NULL CHECK (epsilon > 0),
    -- the query's parameters, unit, bounds and noise scale per figure (never a person's data)
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    prev_hash   TEXT NOT NULL DEFAULT '',
    row_hash    TEXT NOT NULL DEFAULT ''
);
-- A budget's spending: an analyst's releases of a period (analytics.ledger.reserve).
CREATE INDEX IF NOT EXISTS privacy_ledger_analyst_at_idx ON privacy_ledger (analyst, at);
CREATE INDEX IF NOT EXISTS privacy_ledger_at_idx ON privacy_ledger (at);

CREATE OR REPLACE FUNCTION privacy_ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS privacy_ledger_no_change ON privacy_ledger;
CREATE TRIGGER privacy_ledger_no_change BEFORE UPDATE OR DELETE ON privacy_ledger
    FOR EACH ROW EXECUTE FUNCTION privacy_ledger_is_append_only();
DROP TRIGGER IF EXISTS privacy_ledger_no_truncate ON privacy_ledger;
CREATE TRIGGER privacy_ledger_no_truncate BEFORE TRUNCATE ON privacy_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_ledger_is_append_only();

-- The fields, separated by the unit separator, the time in UTC to the microsecond, epsilon and
-- the details as PostgreSQL's text of them (gdpr.verify_audit.expected_ledger_hash reads them so).
CREATE OR REPLACE FUNCTION privacy_ledger_row_hash(
    p_prev TEXT, p_id BIGINT, p_analyst TEXT, p_query TEXT, p_mechanism TEXT, p_epsilon NUMERIC, p_details JSONB,
    p_at TIMESTAMPTZ
) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(
        p_prev || E'\x1f' || p_id::text || E'\x1f' || p_analyst || E'\x1f' || p_query || E'\x1f' || p_mechanism
        || E'\x1f' || p_epsilon::text || E'\x1f' || p_details::text
        || E'\x1f' || to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION privacy_ledger_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    last_hash TEXT;
BEGIN
    -- SHARE ROW EXCLUSIVE conflicts with itself: one writer at a time, readers unhindered.
    LOCK TABLE privacy_ledger IN SHARE ROW EXCLUSIVE MODE;
    NEW.id := nextval(pg_get_serial_sequence('privacy_ledger', 'id'));
    NEW.at := clock_timestamp();
    SELECT row_hash INTO last_hash FROM privacy_ledger ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(last_hash, '');
    NEW.row_hash := privacy_ledger_row_hash(NEW.prev_hash, NEW.id, NEW.analyst, NEW.query, NEW.mechanism, NEW.epsilon,
                                            NEW.details, NEW.at);
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION privacy_ledger_chain() FROM PUBLIC;
DROP TRIGGER IF EXISTS privacy_ledger_chained ON privacy_ledger;
CREATE TRIGGER privacy_ledger_chained BEFORE INSERT ON privacy_ledger
    FOR EACH ROW EXECUTE FUNCTION privacy_ledger_chain();

REVOKE ALL ON privacy_ledger FROM PUBLIC;
GRANT SELECT, INSERT ON privacy_ledger TO privacy_releaser;
GRANT USAGE ON SEQUENCE privacy_ledger_id_seq TO privacy_releaser;
GRANT SELECT ON privacy_ledger TO privacy_auditor, dpo_console;
-- What a release reads: the pseudonymous day summaries and each person's country.
GRANT SELECT (event_date, user_id, page_views, add_to_carts, purchases, revenue) ON analytics_person_days TO privacy_releaser;
GRANT SELECT (user_id, country) ON users_public TO privacy_releaser;
-- The reports release their breakdowns through the ledger (their own budget, analytics.ledger.REPORT_ANALYST).
GRANT privacy_releaser TO analytics_reader;
