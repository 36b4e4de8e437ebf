-- 004: the raw-events consumer re-keys late events of erased users to fresh random ids inside
-- its batch transaction, so it needs to update that one column of events_raw.
GRANT UPDATE (user_id) ON events_raw TO ingest_writer;
