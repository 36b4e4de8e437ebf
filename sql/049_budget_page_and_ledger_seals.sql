-- 049: the DPO console's privacy budgets page, and the privacy ledger's head sealed like the audit
-- trail's (issue 29).
--   * The audit trail records a DPO's budget change ('budget_set', gdpr.actions.set_budget), from
--     the console's page or `python -m gdpr.dpo budget set`. A budget belongs to no privacy
--     request: its entries carry request_id 0, which no request has (ids start at 1), and only they
--     do (checked), so the request pages' timelines never show them.
--   * dpo_console reads which analysts exist (name, role, disabled): a budget is set only for a
--     known analyst, the daily report's budget or the overall one.
--   * privacy_ledger_seals: HMAC-SHA256 seals of the ledger's head under AUDIT_SEAL_KEY, made and
--     checked by python -m gdpr.verify_audit with the audit trail's code (sql/031's
--     privacy_audit_seals, one table per chain). Append-only; the auditor inserts and reads them.

ALTER TABLE privacy_audit_log DROP CONSTRAINT IF EXISTS privacy_audit_log_action_check;
ALTER TABLE privacy_audit_log ADD CONSTRAINT privacy_audit_log_action_check CHECK (action IN (
    'received', 'verified', 'rejected', 'erased', 'exported', 'export_deleted', 'completed', 'not_found',
    'code_sent', 'verification_failed', 'expired', 'export_downloaded',
    'rectified', 'restricted', 'restriction_lifted', 'objected',
    'denied', 'extended', 'held', 'hold_released',
    'budget_set'));
ALTER TABLE privacy_audit_log DROP CONSTRAINT IF EXISTS privacy_audit_log_no_request_check;
ALTER TABLE privacy_audit_log ADD CONSTRAINT privacy_audit_log_no_request_check
    CHECK ((request_id = 0) = (action = 'budget_set'));

GRANT SELECT (name, role, disabled_at) ON analyst_accounts TO dpo_console;

CREATE TABLE IF NOT EXISTS privacy_ledger_seals (
    id         BIGSERIAL PRIMARY KEY,
    ledger_id  BIGINT NOT NULL,
    row_hash   TEXT NOT NULL,
    -- hex HMAC-SHA256 under AUDIT_SEAL_KEY of "<ledger_id>\x1f<row_hash>" (gdpr/verify_audit)
    mac        TEXT NOT NULL CHECK (mac ~ '^[0-9a-f]{64}$'),
    sealed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
DROP TRIGGER IF EXISTS privacy_ledger_seals_no_change ON privacy_ledger_seals;
CREATE TRIGGER privacy_ledger_seals_no_change BEFORE UPDATE OR DELETE ON privacy_ledger_seals
    FOR EACH ROW EXECUTE FUNCTION privacy_ledger_is_append_only();
DROP TRIGGER IF EXISTS privacy_ledger_seals_no_truncate ON privacy_ledger_seals;
CREATE TRIGGER privacy_ledger_seals_no_truncate BEFORE TRUNCATE ON privacy_ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_ledger_is_append_only();
REVOKE ALL ON privacy_ledger_seals FROM PUBLIC;
GRANT SELECT, INSERT ON privacy_ledger_seals TO privacy_auditor;
GRANT USAGE ON SEQUENCE privacy_ledger_seals_id_seq TO privacy_auditor;
