-- 005: events_raw's day index becomes a block range (BRIN) index.
-- Events arrive roughly in time order, so a BRIN index on event_date (kilobytes, nearly free to
-- maintain) finds a day's blocks where the B-tree on (event_date, event_type) held ten million
-- entries and took a random insert for every stored event and for every row an erasure
-- re-keys. The batch job reads a day with a parallel scan and never used the B-tree.
-- Measured on 10M events: 10,000 erasures 7.3 s -> 6.4 s right after a checkpoint.
DROP INDEX IF EXISTS events_raw_day_type_idx;
CREATE INDEX IF NOT EXISTS events_raw_date_brin ON events_raw USING brin (event_date) WITH (pages_per_range = 32);
