-- 014: every data-subject right, verified and accountable (issue 14).
--   * Request types: rectification (Art. 16), restriction (Art. 18) and objection (Art. 21) beside
--     erasure and access.
--   * A request's channel: 'sql' (a row an operator inserted, trusted as verified: the design's
--     way) or 'api' (a person, through python -m gdpr.api: 'unverified' until the code mailed to
--     the address comes back).
--   * Statuses: unverified (waiting for the code), pending, on_hold (a legal hold on the person
--     keeps an erasure waiting), completed, not_found, rejected, denied (Art. 12(5), by a DPO),
--     expired (the code was never confirmed).
--   * Legal holds, per person (the keyed HMAC of their email, never the address).
--   * DPO accounts and sessions for python -m console.
--   * Group roles for the privacy API and the DPO console, and what each may touch.

ALTER TABLE privacy_requests DROP CONSTRAINT IF EXISTS privacy_requests_request_type_check;
ALTER TABLE privacy_requests ADD CONSTRAINT privacy_requests_request_type_check
    CHECK (request_type IN ('erasure', 'access', 'rectification', 'restriction', 'objection'));
ALTER TABLE privacy_requests DROP CONSTRAINT IF EXISTS privacy_requests_status_check;
ALTER TABLE privacy_requests ADD CONSTRAINT privacy_requests_status_check
    CHECK (status IN ('unverified', 'pending', 'on_hold', 'completed', 'not_found', 'rejected', 'denied', 'expired'));

ALTER TABLE privacy_requests
    ADD COLUMN IF NOT EXISTS channel TEXT NOT NULL DEFAULT 'sql' CHECK (channel IN ('sql', 'api')),
    -- Rectification: the corrected values ({"email": ..., "full_name": ..., "address": ...}),
    -- removed once applied or refused, like the email.
    ADD COLUMN IF NOT EXISTS corrections JSONB CHECK (corrections IS NULL OR jsonb_typeof(corrections) = 'object'),
    -- API requests: SHA-256 of the secret the requester was given (status and download need it).
    ADD COLUMN IF NOT EXISTS secret_hash TEXT,
    ADD COLUMN IF NOT EXISTS verified_at TIMESTAMPTZ,
    -- The deadline as first set (Art. 12(3)): an extension moves due_at, by two months at most.
    ADD COLUMN IF NOT EXISTS original_due_at TIMESTAMPTZ,
    -- An access export is downloaded once, before this time, then deleted.
    ADD COLUMN IF NOT EXISTS export_expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS export_downloaded_at TIMESTAMPTZ;
UPDATE privacy_requests SET original_due_at = due_at WHERE original_due_at IS NULL;

CREATE OR REPLACE FUNCTION privacy_request_due_date() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := NEW.requested_at + interval '1 month';
    NEW.original_due_at := NEW.due_at;
    RETURN NEW;
END;
$$;

-- The 'received' entry names the channel; an API request is not verified yet.
CREATE OR REPLACE FUNCTION privacy_request_received() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO privacy_audit_log (request_id, action, actor, details)
    VALUES (NEW.id, 'received', CASE NEW.channel WHEN 'api' THEN 'privacy_api' ELSE 'database' END,
            jsonb_build_object('request_type', NEW.request_type, 'channel', NEW.channel));
    PERFORM pg_notify('privacy_requests', '');
    RETURN NULL;
END;
$$;

CREATE INDEX IF NOT EXISTS privacy_requests_open_idx ON privacy_requests (status, requested_at)
    WHERE status IN ('unverified', 'pending', 'on_hold');

-- One verification code per API request: only its hash, a try counter and an expiry.
CREATE TABLE IF NOT EXISTS privacy_verifications (
    request_id  BIGINT PRIMARY KEY REFERENCES privacy_requests (id),
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Legal holds: while one is active (not released, until not passed) the person's erasure waits.
CREATE TABLE IF NOT EXISTS legal_holds (
    id           BIGSERIAL PRIMARY KEY,
    email_hmac   TEXT NOT NULL,
    reason       TEXT NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    placed_by    TEXT NOT NULL,
    placed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    until        TIMESTAMPTZ,
    released_at  TIMESTAMPTZ,
    released_by  TEXT
);
CREATE INDEX IF NOT EXISTS legal_holds_person_idx ON legal_holds (email_hmac) WHERE released_at IS NULL;

-- Restrictions (Art. 18) in force: the person's events are dropped from the restriction's time on
-- (a withdrawal in consent_ledger with source 'restriction') until a DPO lifts it.
CREATE TABLE IF NOT EXISTS processing_restrictions (
    request_id  BIGINT PRIMARY KEY REFERENCES privacy_requests (id),
    user_id     UUID NOT NULL,
    since       TIMESTAMPTZ NOT NULL DEFAULT now(),
    lifted_at   TIMESTAMPTZ,
    lifted_by   TEXT
);

-- DPO console: accounts (argon2 password hashes) and server-side sessions (only token hashes).
CREATE TABLE IF NOT EXISTS dpo_accounts (
    username       TEXT PRIMARY KEY CHECK (username ~ '^[a-z][a-z0-9._-]{1,39}$'),
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at    TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS dpo_sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES dpo_accounts (username),
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);

-- The audit trail's vocabulary grows with the rights.
ALTER TABLE privacy_audit_log DROP CONSTRAINT IF EXISTS privacy_audit_log_action_check;
ALTER TABLE privacy_audit_log ADD CONSTRAINT privacy_audit_log_action_check CHECK (action IN (
    'received', 'verified', 'rejected', 'erased', 'exported', 'export_deleted', 'completed', 'not_found',
    'code_sent', 'verification_failed', 'expired', 'export_downloaded',
    'rectified', 'restricted', 'restriction_lifted', 'objected',
    'denied', 'extended', 'held', 'hold_released'));

-- Group roles of the two new services.
DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['privacy_api', 'dpo_console'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
        EXECUTE format('GRANT %I TO %I', name, current_user);
    END LOOP;
END;
$$;

-- The privacy API files requests, checks codes, shows a request's status to its secret's holder
-- and hands an export over once. It never reads users_pii.
GRANT INSERT (email, email_hmac, request_type, status, channel, corrections, secret_hash) ON privacy_requests TO privacy_api;
GRANT SELECT (id, request_type, status, outcome, channel, secret_hash, requested_at, processed_at, due_at, verified_at,
              export_path, export_expires_at, export_downloaded_at) ON privacy_requests TO privacy_api;
GRANT UPDATE (status, verified_at, export_downloaded_at, email, corrections, processed_at, outcome) ON privacy_requests
    TO privacy_api;
GRANT USAGE ON SEQUENCE privacy_requests_request_id_seq TO privacy_api;
GRANT SELECT, INSERT, UPDATE ON privacy_verifications TO privacy_api;
-- Appending to the chain reads the last row's hash (the chain trigger runs as the writer).
GRANT SELECT (id, row_hash), INSERT ON privacy_audit_log TO privacy_api;
GRANT USAGE ON SEQUENCE privacy_audit_log_id_seq TO privacy_api;

-- The DPO console: the queue, a request's timeline, and the DPO's actions.
GRANT SELECT ON privacy_requests, privacy_audit_log, legal_holds, privacy_verifications TO dpo_console;
GRANT UPDATE (status, outcome, due_at, processed_at, email, email_hmac, corrections, verified_at) ON privacy_requests
    TO dpo_console;
GRANT INSERT ON privacy_audit_log TO dpo_console;
GRANT USAGE ON SEQUENCE privacy_audit_log_id_seq TO dpo_console;
GRANT INSERT, UPDATE (released_at, released_by) ON legal_holds TO dpo_console;
GRANT USAGE ON SEQUENCE legal_holds_id_seq TO dpo_console;
GRANT SELECT, INSERT, UPDATE (password_hash, disabled_at) ON dpo_accounts TO dpo_console;
GRANT SELECT, INSERT, DELETE ON dpo_sessions TO dpo_console;
-- Lifting a restriction restores the consent the person had before it.
GRANT SELECT, UPDATE (lifted_at, lifted_by) ON processing_restrictions TO dpo_console;
GRANT SELECT, INSERT ON consent_ledger TO dpo_console;
GRANT USAGE ON SEQUENCE consent_ledger_id_seq TO dpo_console;

-- The processor: holds decide whether an erasure waits; codes of handled requests go; the
-- tables an erasure rewrites are vacuumed after it (MAINTAIN, PostgreSQL 17+).
GRANT SELECT ON legal_holds TO gdpr_processor;
GRANT SELECT, DELETE ON privacy_verifications TO gdpr_processor;
GRANT SELECT, INSERT ON processing_restrictions TO gdpr_processor;
-- MAINTAIN exists from PostgreSQL 17 on; before it only the owner may vacuum (the processor's
-- VACUUM is then skipped with a warning).
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON users_pii, users_public, events_raw, dead_letter_events, privacy_requests TO gdpr_processor';
    END IF;
END;
$$;

-- The audit report counts holds, denials and extensions.
GRANT SELECT (id, placed_at, until, released_at) ON legal_holds TO privacy_auditor;
GRANT SELECT (request_id, since, lifted_at) ON processing_restrictions TO privacy_auditor;
GRANT SELECT (channel, original_due_at, verified_at) ON privacy_requests TO privacy_auditor;

-- Nobody rewrites history, the owner included: the triggers refuse it, and the privileges too.
REVOKE UPDATE, DELETE, TRUNCATE ON privacy_audit_log FROM PUBLIC, analytics_reader, ingest_writer, gdpr_processor,
    privacy_auditor, event_collector, privacy_api, dpo_console;
