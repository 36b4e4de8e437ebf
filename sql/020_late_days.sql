-- 020: the batch layer finds the days that received events since its last look, late ones
-- included, without reading the history: events are stored in arrival order, so a block range
-- index on ingested_at names the few blocks written since then.
CREATE INDEX IF NOT EXISTS events_raw_ingested_brin ON events_raw USING brin (ingested_at) WITH (pages_per_range = 32);

-- Each `batch.batch_metrics --changed` run: from when it looked for new events, and the days it
-- recomputed.
CREATE TABLE IF NOT EXISTS batch_runs (
    id            BIGSERIAL PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    looked_from   TIMESTAMPTZ,                 -- NULL: the first run looked at every day
    days          DATE[] NOT NULL
);

GRANT SELECT (ingested_at) ON events_raw TO batch_writer;
GRANT SELECT, INSERT ON batch_runs TO batch_writer;
GRANT USAGE ON SEQUENCE batch_runs_id_seq TO batch_writer;
