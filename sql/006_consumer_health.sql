-- 006: what an operator needs to see when a consumer is stuck rather than slow: the database's
-- own reason for an event it refused (dead_letter_events.detail, e.g. "22003: value overflows
-- numeric format"), and one heartbeat row per running consumer instance saying whether it can
-- reach its broker, so `python -m consumers.status` shows a lost broker instead of old progress.

ALTER TABLE dead_letter_events ADD COLUMN IF NOT EXISTS detail TEXT;

CREATE TABLE IF NOT EXISTS consumer_instances (
    consumer_group     TEXT NOT NULL,
    topic              TEXT NOT NULL,
    instance           TEXT NOT NULL,          -- host:pid of the process
    broker_ok          BOOLEAN NOT NULL,
    broker_lost_since  TIMESTAMPTZ,            -- set while the broker cannot be reached
    started_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, instance)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON consumer_instances TO ingest_writer;
GRANT SELECT (reason, detail, received_at) ON dead_letter_events TO privacy_auditor;
