-- 031: the audit trail's actor is the login that wrote the row, and its chain is anchored outside
-- the database (issue 26).
--   * privacy_audit_log_actor(): a BEFORE INSERT trigger (SECURITY INVOKER, so current_user is the
--     writer: the component's login, or the owner inside the owner's SECURITY DEFINER functions)
--     that refuses an actor the writer's group may not write: gdpr_processor writes
--     'gdpr_processor', privacy_api 'privacy_api', retention_worker 'retention', dpo_console
--     'dpo:<an enabled DPO account>'. The owner (migrations, the request-received trigger) writes
--     any. Its name sorts before privacy_audit_log_chained, so it runs first.
--   * privacy_audit_log_chain() (sql/013) is redefined: SECURITY DEFINER with a fixed search_path,
--     and its writers serialised by the lock table platform_lock_audit_chain (sql/030) instead of
--     advisory lock 715004, which any login could hold.
--   * privacy_audit_seals: HMAC-SHA256 seals of the chain's head, made by python -m
--     gdpr.verify_audit with AUDIT_SEAL_KEY, a key the database never holds. Whoever recomputes
--     the chain (the owner, triggers off) cannot make the seals of the rows it rewrote match.
--     Append-only like the trail; the auditor inserts and reads them, nobody updates or deletes.
--   * dpo_accounts: the console's login may no longer create accounts; `python -m
--     console.accounts` runs as the owner (an operator's tool).

CREATE OR REPLACE FUNCTION privacy_audit_log_actor() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF current_user = (SELECT relowner::regrole::text FROM pg_class WHERE oid = TG_RELID) THEN
        RETURN NEW;
    END IF;
    IF (pg_has_role(current_user, 'gdpr_processor', 'MEMBER') AND NEW.actor = 'gdpr_processor')
       OR (pg_has_role(current_user, 'privacy_api', 'MEMBER') AND NEW.actor = 'privacy_api')
       OR (pg_has_role(current_user, 'retention_worker', 'MEMBER') AND NEW.actor = 'retention') THEN
        RETURN NEW;
    END IF;
    -- Read only by the console's login (which may read the accounts), and only for a DPO's name.
    IF pg_has_role(current_user, 'dpo_console', 'MEMBER') AND NEW.actor LIKE 'dpo:%' THEN
        IF EXISTS (SELECT FROM dpo_accounts a WHERE 'dpo:' || a.username = NEW.actor AND a.disabled_at IS NULL) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'login % may not write audit entries as %', session_user, NEW.actor
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS privacy_audit_log_actor ON privacy_audit_log;
CREATE TRIGGER privacy_audit_log_actor BEFORE INSERT ON privacy_audit_log
    FOR EACH ROW EXECUTE FUNCTION privacy_audit_log_actor();

CREATE OR REPLACE FUNCTION privacy_audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    last_hash TEXT;
BEGIN
    LOCK TABLE platform_lock_audit_chain IN EXCLUSIVE MODE;
    NEW.id := nextval(pg_get_serial_sequence('privacy_audit_log', 'id'));
    SELECT row_hash INTO last_hash FROM privacy_audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(last_hash, '');
    NEW.row_hash := privacy_audit_row_hash(NEW.prev_hash, NEW.id, NEW.request_id, NEW.action, NEW.actor, NEW.details, NEW.at);
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION privacy_audit_log_chain() FROM PUBLIC;

CREATE TABLE IF NOT EXISTS privacy_audit_seals (
    id         BIGSERIAL PRIMARY KEY,
    audit_id   BIGINT NOT NULL,
    row_hash   TEXT NOT NULL,
    -- hex HMAC-SHA256 under AUDIT_SEAL_KEY of "<audit_id>\x1f<row_hash>" (gdpr/verify_audit.py)
    mac        TEXT NOT NULL CHECK (mac ~ '^[0-9a-f]{64}$'),
    sealed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
DROP TRIGGER IF EXISTS privacy_audit_seals_no_change ON privacy_audit_seals;
CREATE TRIGGER privacy_audit_seals_no_change BEFORE UPDATE OR DELETE ON privacy_audit_seals
    FOR EACH ROW EXECUTE FUNCTION privacy_audit_log_is_append_only();
DROP TRIGGER IF EXISTS privacy_audit_seals_no_truncate ON privacy_audit_seals;
CREATE TRIGGER privacy_audit_seals_no_truncate BEFORE TRUNCATE ON privacy_audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_log_is_append_only();
REVOKE ALL ON privacy_audit_seals FROM PUBLIC;
GRANT SELECT, INSERT ON privacy_audit_seals TO privacy_auditor;
GRANT USAGE ON SEQUENCE privacy_audit_seals_id_seq TO privacy_auditor;

REVOKE INSERT ON dpo_accounts FROM dpo_console;
