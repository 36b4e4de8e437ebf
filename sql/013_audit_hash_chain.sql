-- 013: a tamper-evident audit trail. Each privacy_audit_log row carries the hash of the row before
-- it (prev_hash) and its own (row_hash): SHA-256 over the previous hash and its fields, so altering,
-- inserting or deleting a row in the middle breaks every later link. `python -m gdpr.verify_audit`
-- recomputes the chain (in Python, not with this function) and names the first broken row.
-- Writers are serialised while their transaction lasts (an advisory lock) and each row takes its id
-- under that lock, so id order is chain order.

ALTER TABLE privacy_audit_log ADD COLUMN IF NOT EXISTS prev_hash TEXT, ADD COLUMN IF NOT EXISTS row_hash TEXT;

-- The fields, separated by the unit separator, with the time in UTC to the microsecond and the
-- details as jsonb's canonical text.
CREATE OR REPLACE FUNCTION privacy_audit_row_hash(
    p_prev TEXT, p_id BIGINT, p_request BIGINT, p_action TEXT, p_actor TEXT, p_details JSONB, p_at TIMESTAMPTZ
) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(
        p_prev || E'\x1f' || p_id::text || E'\x1f' || p_request::text || E'\x1f' || p_action || E'\x1f' || p_actor
        || E'\x1f' || p_details::text || E'\x1f' || to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION privacy_audit_log_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_hash TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(715004);
    NEW.id := nextval(pg_get_serial_sequence('privacy_audit_log', 'id'));
    SELECT row_hash INTO last_hash FROM privacy_audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(last_hash, '');
    NEW.row_hash := privacy_audit_row_hash(NEW.prev_hash, NEW.id, NEW.request_id, NEW.action, NEW.actor, NEW.details, NEW.at);
    RETURN NEW;
END;
$$;

-- The rows already there are chained in id order, once (the migration owner may lift the
-- append-only trigger for that).
ALTER TABLE privacy_audit_log DISABLE TRIGGER privacy_audit_log_no_change;
DO $$
DECLARE
    r RECORD;
    last_hash TEXT := '';
BEGIN
    FOR r IN SELECT id, request_id, action, actor, details, at FROM privacy_audit_log ORDER BY id LOOP
        UPDATE privacy_audit_log
        SET prev_hash = last_hash,
            row_hash = privacy_audit_row_hash(last_hash, r.id, r.request_id, r.action, r.actor, r.details, r.at)
        WHERE id = r.id
        RETURNING row_hash INTO last_hash;
    END LOOP;
END;
$$;
ALTER TABLE privacy_audit_log ENABLE TRIGGER privacy_audit_log_no_change;
ALTER TABLE privacy_audit_log ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL;

DROP TRIGGER IF EXISTS privacy_audit_log_chained ON privacy_audit_log;
CREATE TRIGGER privacy_audit_log_chained BEFORE INSERT ON privacy_audit_log
    FOR EACH ROW EXECUTE FUNCTION privacy_audit_log_chain();
