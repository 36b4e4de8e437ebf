-- 001: the platform's tables. Personal data only in users_pii; analytics read users_public,
-- events_raw and the metrics tables. Money is NUMERIC, never float. Every time is timestamptz
-- and every day is a UTC day.

CREATE TABLE IF NOT EXISTS users_pii (
    user_id        BIGINT PRIMARY KEY,
    -- Nullable on purpose: erasure sets these to NULL (the original design's NOT NULL made
    -- every erasure fail).
    email          TEXT,
    full_name      TEXT,
    address        TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    anonymized_at  TIMESTAMPTZ
);
-- Erasure looks people up by email, case-insensitively.
CREATE UNIQUE INDEX IF NOT EXISTS users_pii_email_lower_idx ON users_pii (lower(email));

CREATE TABLE IF NOT EXISTS users_public (
    user_id      BIGINT PRIMARY KEY REFERENCES users_pii (user_id),
    country      CHAR(2) NOT NULL,
    signup_date  DATE NOT NULL,
    -- The generator sends events only for users who are not erased.
    is_erased    BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS events_raw (
    event_id         UUID PRIMARY KEY,          -- idempotency: a second copy is ignored
    user_id          BIGINT NOT NULL,
    event_type       TEXT NOT NULL CHECK (event_type IN ('page_view', 'add_to_cart', 'purchase')),
    event_timestamp  TIMESTAMPTZ NOT NULL,
    event_date       DATE NOT NULL,             -- UTC date of event_timestamp
    amount           NUMERIC(12, 2) CHECK (amount IS NULL OR amount >= 0),
    metadata         JSONB NOT NULL DEFAULT '{}'::jsonb,
    kafka_partition  INTEGER NOT NULL,
    kafka_offset     BIGINT NOT NULL,
    ingested_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The batch job reads one day at a time.
CREATE INDEX IF NOT EXISTS events_raw_day_type_idx ON events_raw (event_date, event_type);
CREATE INDEX IF NOT EXISTS events_raw_user_idx ON events_raw (user_id);

CREATE TABLE IF NOT EXISTS metrics_streaming_daily (
    event_date   DATE NOT NULL,
    event_type   TEXT NOT NULL,
    event_count  BIGINT NOT NULL,
    revenue      NUMERIC(16, 2) NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, event_type)
);

CREATE TABLE IF NOT EXISTS metrics_batch_daily (
    event_date   DATE NOT NULL,
    event_type   TEXT NOT NULL,
    event_count  BIGINT NOT NULL,
    revenue      NUMERIC(16, 2) NOT NULL,
    computed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, event_type)
);

-- Progress of every consumer group, written in the same transaction as its rows: PostgreSQL,
-- not Kafka, is the source of truth for what has been processed.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group  TEXT NOT NULL,
    topic           TEXT NOT NULL,
    partition       INTEGER NOT NULL,
    next_offset     BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages that failed validation, with the reason and a redacted payload. The raw-events
-- consumer is the system of record for what arrived: every message of the topic ends up exactly
-- once in events_raw or here (the offset fence guarantees it, so no unique key on offsets, which
-- a recreated topic would reuse).
CREATE TABLE IF NOT EXISTS dead_letter_events (
    id               BIGSERIAL PRIMARY KEY,
    consumer_group   TEXT NOT NULL,
    topic            TEXT NOT NULL,
    kafka_partition  INTEGER NOT NULL,
    kafka_offset     BIGINT NOT NULL,
    reason           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letter_events_reason_idx ON dead_letter_events (reason);

CREATE TABLE IF NOT EXISTS privacy_requests (
    request_id     BIGSERIAL PRIMARY KEY,
    -- The requester's email until processing; then NULL, with only a keyed HMAC kept for proof.
    email          TEXT,
    email_hmac     TEXT,
    request_type   TEXT NOT NULL DEFAULT 'erasure' CHECK (request_type IN ('erasure')),
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'completed', 'not_found', 'rejected')),
    outcome        TEXT,
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS privacy_requests_pending_idx ON privacy_requests (requested_at) WHERE status = 'pending';
