-- 010: consent, and the doors of the HTTP collector.
--   * consent_ledger: an append-only history of each user's consent per purpose. Every row says
--     granted or withdrawn, from when (effective_at), from which source, and when it was
--     recorded. The state at any instant is the last row with effective_at <= that instant
--     (consent_at). The consumers enforce it on every event, whatever path the event took.
--   * consent_dropped_daily: events a consumer did not store or count for lack of consent, per
--     consumer group, UTC event day and reason. Counts only; the events themselves are not kept.
--   * collector_write_keys: the collector's write keys, hashed (SHA-256 of a 256-bit random
--     key: a slow password hash adds nothing against guessing a key that long), each with its
--     allowed browser origins and its rate limit.

CREATE TABLE IF NOT EXISTS consent_ledger (
    id           BIGSERIAL PRIMARY KEY,
    user_id      UUID NOT NULL,
    purpose      TEXT NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{0,39}$'),
    granted      BOOLEAN NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    source       TEXT NOT NULL DEFAULT 'sql' CHECK (length(source) BETWEEN 1 AND 100),
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS consent_ledger_user_idx ON consent_ledger (user_id, purpose, effective_at);
-- The consumers read what was recorded since their last look.
CREATE INDEX IF NOT EXISTS consent_ledger_recorded_idx ON consent_ledger (recorded_at);

-- recorded_at is the database's clock, whatever the writer says: the consumers' incremental
-- reads depend on it.
CREATE OR REPLACE FUNCTION consent_ledger_recorded_now() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_at := clock_timestamp();
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS consent_ledger_recorded ON consent_ledger;
CREATE TRIGGER consent_ledger_recorded BEFORE INSERT ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_recorded_now();

CREATE OR REPLACE FUNCTION consent_ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_ledger is append-only: % is not allowed (record a withdrawal instead)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS consent_ledger_no_change ON consent_ledger;
CREATE TRIGGER consent_ledger_no_change BEFORE UPDATE OR DELETE ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_is_append_only();
DROP TRIGGER IF EXISTS consent_ledger_no_truncate ON consent_ledger;
CREATE TRIGGER consent_ledger_no_truncate BEFORE TRUNCATE ON consent_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_is_append_only();

-- Consent of one user for one purpose at one instant: true, false (withdrawn), or NULL (never
-- recorded; CONSENT_MODE decides what that means).
CREATE OR REPLACE FUNCTION consent_at(p_user UUID, p_purpose TEXT, p_at TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT granted FROM consent_ledger
    WHERE user_id = p_user AND purpose = p_purpose AND effective_at <= p_at
    ORDER BY effective_at DESC, id DESC
    LIMIT 1
$$;

-- The state now, per user and purpose.
CREATE OR REPLACE VIEW consent_current AS
    SELECT DISTINCT ON (user_id, purpose) user_id, purpose, granted, effective_at, source
    FROM consent_ledger
    WHERE effective_at <= clock_timestamp()
    ORDER BY user_id, purpose, effective_at DESC, id DESC;

CREATE TABLE IF NOT EXISTS consent_dropped_daily (
    consumer_group TEXT NOT NULL,
    event_date     DATE NOT NULL,
    reason         TEXT NOT NULL,
    dropped_events BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_date, reason)
);

CREATE TABLE IF NOT EXISTS collector_write_keys (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    key_hash        TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    -- The first characters of the key, so an operator can tell keys apart without the key.
    key_prefix      TEXT NOT NULL,
    allowed_origins TEXT[] NOT NULL DEFAULT '{}',
    rate_per_s      INTEGER NOT NULL CHECK (rate_per_s > 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at      TIMESTAMPTZ
);
-- One live key per name; a revoked name may be issued again.
CREATE UNIQUE INDEX IF NOT EXISTS collector_write_keys_live_name ON collector_write_keys (name) WHERE revoked_at IS NULL;

-- The collector: reads the keys, records consent. It never reads events or people.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'event_collector') THEN
        CREATE ROLE event_collector NOLOGIN;
    END IF;
    EXECUTE format('GRANT event_collector TO %I', current_user);
END;
$$;
GRANT SELECT (id, name, key_hash, allowed_origins, rate_per_s, revoked_at) ON collector_write_keys TO event_collector;
GRANT INSERT ON consent_ledger TO event_collector;
GRANT USAGE ON SEQUENCE consent_ledger_id_seq TO event_collector;

-- The consumers read the ledger and count what they drop.
GRANT SELECT (id, user_id, purpose, granted, effective_at, recorded_at) ON consent_ledger TO ingest_writer;
GRANT SELECT, INSERT, UPDATE ON consent_dropped_daily TO ingest_writer;

-- An erasure records a withdrawal; an access export includes the ledger.
GRANT SELECT, INSERT ON consent_ledger TO gdpr_processor;
GRANT USAGE ON SEQUENCE consent_ledger_id_seq TO gdpr_processor;

-- Reports: counts of grants, withdrawals and drops per day, never who.
GRANT SELECT (purpose, granted, effective_at, source, recorded_at) ON consent_ledger TO privacy_auditor;
GRANT SELECT ON consent_dropped_daily TO privacy_auditor, analytics_reader;
