-- 003: GDPR done right. Access requests next to erasure, a due date per request (Art. 12(3)),
-- an append-only audit trail, a notification per new request (LISTEN/NOTIFY), counts of
-- personal data redacted at ingest, and least-privilege roles for each component.

-- Erasure re-keys a person's rows in users_public and events_raw to a fresh random id that has
-- no users_pii row, so users_public can no longer reference users_pii.
ALTER TABLE users_public DROP CONSTRAINT IF EXISTS users_public_user_id_fkey;

-- Request types and lifecycle.
ALTER TABLE privacy_requests DROP CONSTRAINT IF EXISTS privacy_requests_request_type_check;
ALTER TABLE privacy_requests ADD CONSTRAINT privacy_requests_request_type_check
    CHECK (request_type IN ('erasure', 'access'));
ALTER TABLE privacy_requests ADD COLUMN IF NOT EXISTS due_at TIMESTAMPTZ;
ALTER TABLE privacy_requests ADD COLUMN IF NOT EXISTS export_path TEXT;
UPDATE privacy_requests SET due_at = requested_at + interval '1 month' WHERE due_at IS NULL;
ALTER TABLE privacy_requests ALTER COLUMN due_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS privacy_requests_email_hmac_idx ON privacy_requests (email_hmac);

-- Append-only audit trail: every action on every request, never any personal data.
CREATE TABLE IF NOT EXISTS privacy_audit_log (
    id          BIGSERIAL PRIMARY KEY,
    request_id  BIGINT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('received', 'verified', 'rejected', 'erased', 'exported',
                                               'export_deleted', 'completed', 'not_found')),
    actor       TEXT NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS privacy_audit_log_request_idx ON privacy_audit_log (request_id);

CREATE OR REPLACE FUNCTION privacy_audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'privacy_audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS privacy_audit_log_no_change ON privacy_audit_log;
CREATE TRIGGER privacy_audit_log_no_change BEFORE UPDATE OR DELETE ON privacy_audit_log
    FOR EACH ROW EXECUTE FUNCTION privacy_audit_log_is_append_only();
DROP TRIGGER IF EXISTS privacy_audit_log_no_truncate ON privacy_audit_log;
CREATE TRIGGER privacy_audit_log_no_truncate BEFORE TRUNCATE ON privacy_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_log_is_append_only();

-- A new request gets its due date and a 'received' audit entry, and wakes the processor.
-- SECURITY DEFINER: whoever may file a request need not be allowed to write the audit trail.
CREATE OR REPLACE FUNCTION privacy_request_received() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO privacy_audit_log (request_id, action, actor, details)
    VALUES (NEW.request_id, 'received', 'database', jsonb_build_object('request_type', NEW.request_type));
    -- One payload for all: PostgreSQL folds identical notifications of a transaction into one.
    PERFORM pg_notify('privacy_requests', '');
    RETURN NULL;
END;
$$;
CREATE OR REPLACE FUNCTION privacy_request_due_date() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := NEW.requested_at + interval '1 month';
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS privacy_requests_due_date ON privacy_requests;
CREATE TRIGGER privacy_requests_due_date BEFORE INSERT ON privacy_requests
    FOR EACH ROW EXECUTE FUNCTION privacy_request_due_date();
DROP TRIGGER IF EXISTS privacy_requests_received ON privacy_requests;
CREATE TRIGGER privacy_requests_received AFTER INSERT ON privacy_requests
    FOR EACH ROW EXECUTE FUNCTION privacy_request_received();

-- Personal data found in event metadata and redacted before storage, per ingest day and kind.
CREATE TABLE IF NOT EXISTS ingest_redactions (
    day         DATE NOT NULL,
    kind        TEXT NOT NULL,
    redactions  BIGINT NOT NULL,
    PRIMARY KEY (day, kind)
);

-- Least privilege. Group roles without login; the components switch to theirs with SET ROLE
-- (production gives each component a login role that is a member of one of these).
DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['analytics_reader', 'ingest_writer', 'gdpr_processor', 'privacy_auditor'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
        EXECUTE format('GRANT %I TO %I', name, current_user);
    END LOOP;
END;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM analytics_reader, ingest_writer, gdpr_processor, privacy_auditor;

-- Business analytics: events, metrics and the public profile; never users_pii or privacy_requests.
GRANT SELECT ON events_raw, metrics_streaming_daily, metrics_batch_daily, users_public TO analytics_reader;
GRANT SELECT (reason, received_at) ON dead_letter_events TO analytics_reader;

-- Consumers: what they write, and of users_pii only whether a user id was erased.
GRANT SELECT, INSERT ON events_raw TO ingest_writer;
GRANT SELECT, INSERT, UPDATE ON metrics_streaming_daily, consumer_offsets, ingest_redactions TO ingest_writer;
GRANT INSERT ON dead_letter_events TO ingest_writer;
GRANT USAGE ON SEQUENCE dead_letter_events_id_seq TO ingest_writer;
GRANT SELECT, INSERT, DELETE ON consumer_batches TO ingest_writer;
GRANT SELECT (user_id, anonymized_at) ON users_pii TO ingest_writer;

-- The GDPR processor: finds, erases and exports a person; writes the audit trail.
GRANT SELECT, UPDATE ON users_pii, users_public, privacy_requests TO gdpr_processor;
GRANT SELECT, UPDATE (user_id) ON events_raw TO gdpr_processor;
GRANT SELECT, UPDATE (payload) ON dead_letter_events TO gdpr_processor;
GRANT SELECT, INSERT ON privacy_audit_log TO gdpr_processor;
GRANT USAGE ON SEQUENCE privacy_audit_log_id_seq TO gdpr_processor;

-- The GDPR audit report: lifecycle and counts, never an email.
GRANT SELECT (request_id, request_type, status, outcome, requested_at, processed_at, due_at) ON privacy_requests
    TO privacy_auditor;
GRANT SELECT ON privacy_audit_log, ingest_redactions TO privacy_auditor;
GRANT SELECT (user_id, anonymized_at) ON users_pii TO privacy_auditor;
GRANT SELECT (user_id) ON events_raw, users_public TO privacy_auditor;
GRANT SELECT (reason, received_at) ON dead_letter_events TO privacy_auditor;
