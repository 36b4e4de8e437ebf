-- 002: what the reliability work needs: per-batch progress for the status command, a record of
-- batch runs, and an append-only log of streaming rows repaired from the batch figures.

-- One row per committed consumer batch (pruned to the last hour by the consumers themselves).
CREATE TABLE IF NOT EXISTS consumer_batches (
    consumer_group  TEXT NOT NULL,
    topic           TEXT NOT NULL,
    events          INTEGER NOT NULL,
    dead_letters    INTEGER NOT NULL,
    committed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consumer_batches_group_time_idx ON consumer_batches (consumer_group, committed_at);

-- Every repair of metrics_streaming_daily from metrics_batch_daily, with the figures before.
CREATE TABLE IF NOT EXISTS metrics_repairs (
    id                    BIGSERIAL PRIMARY KEY,
    event_date            DATE NOT NULL,
    event_type            TEXT NOT NULL,
    streaming_count       BIGINT NOT NULL,
    streaming_revenue     NUMERIC(16, 2) NOT NULL,
    batch_count           BIGINT NOT NULL,
    batch_revenue         NUMERIC(16, 2) NOT NULL,
    repaired_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
