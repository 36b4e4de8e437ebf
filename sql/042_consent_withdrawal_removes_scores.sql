-- 042: a withdrawal of analytics consent deletes the person's scores at once (issue 28). An
-- erasure, an objection and a restriction deleted them in their own transactions (sql/039-040),
-- but a person's own withdrawal (the collector's POST /v1/consent, or any other writer of the
-- ledger) left their RFM and lifetime-value rows in place until the next nightly scoring.
--   * After every INSERT statement on consent_ledger, the people its rows withdraw from
--     'analytics' (core.consent.ANALYTICS) lose their analytics_rfm_scores and
--     analytics_clv_scores rows, in the transaction that records the withdrawal. SECURITY
--     DEFINER: the writers of consent (the collector's login) may neither read nor delete scores.
--     Every recorded withdrawal counts, whatever its effective_at (the platform's writers record
--     them effective now): deleting early is the safe side, and the next scoring scores whoever
--     has consent then. One statement-level trigger: an erasure's withdrawals of many people
--     delete their rows in two statements, and a statement of grants only costs a scan of its rows.
--   * A scoring that read consent before a withdrawal and writes after it: its write locks both
--     score tables (SHARE ROW EXCLUSIVE, which a DELETE's ROW EXCLUSIVE waits for, and which waits
--     for one) and stores nobody withdrawn by then (analytics.scores); a withdrawal recorded
--     during the write waits for it here and then deletes what it wrote. Both lock the RFM table
--     first, then the lifetime values: the two never wait for each other in a circle.

CREATE OR REPLACE FUNCTION consent_withdrawal_removes_scores() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM recorded WHERE purpose = 'analytics' AND NOT granted) THEN
        DELETE FROM analytics_rfm_scores
        WHERE user_id IN (SELECT user_id FROM recorded WHERE purpose = 'analytics' AND NOT granted);
        DELETE FROM analytics_clv_scores
        WHERE user_id IN (SELECT user_id FROM recorded WHERE purpose = 'analytics' AND NOT granted);
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION consent_withdrawal_removes_scores() FROM PUBLIC;
DROP TRIGGER IF EXISTS consent_ledger_withdrawal_removes_scores ON consent_ledger;
CREATE TRIGGER consent_ledger_withdrawal_removes_scores AFTER INSERT ON consent_ledger
    REFERENCING NEW TABLE AS recorded
    FOR EACH STATEMENT EXECUTE FUNCTION consent_withdrawal_removes_scores();
