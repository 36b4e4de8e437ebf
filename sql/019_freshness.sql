-- 019: freshness. Each committed consumer batch records the Kafka timestamps (the time each event
-- was produced: by the generator, a producer of somebody else, or the collector as it accepted
-- it) of its oldest and newest event, and the time of its commit: how long after being
-- produced its events became visible. `python -m consumers.status` shows it per group.

ALTER TABLE consumer_batches
    ADD COLUMN IF NOT EXISTS oldest_event_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS newest_event_at TIMESTAMPTZ;
