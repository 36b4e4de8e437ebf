-- 036: the digests of erased events' former ids (sql/034) expire with the raw events of their day.
-- A digest only stops a re-sent copy of an erased event from being stored again; once retention has
-- removed the day's events, that day is gone from events_raw whatever arrives, and the digest is a
-- row that would otherwise be kept for ever (one per erased event). Retention deletes them by day.
CREATE INDEX IF NOT EXISTS erased_event_digests_by_day ON erased_event_digests (event_date);
GRANT SELECT (event_date), DELETE ON erased_event_digests TO retention_worker;
