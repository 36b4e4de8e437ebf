-- 026: the partitions of events_raw whose index cleanup an erasure left for later.
--
-- An erasure re-keys the person's events (a new row version each) and then vacuums the partitions
-- it touched, so that the old versions, which held the former id and the scrubbed values, leave
-- the table files at once. Removing their entries from the partitions' B-tree indexes is another
-- matter: a VACUUM reads every page of every index of each partition, whatever few rows died, so
-- for an erasure of thousands of people, whose events lie on every day of the history, it reads
-- the indexes of the whole history (24 s of a 93 s erasure of 10,000 people over 50M events,
-- measured). Past a size (gdpr.process_privacy_requests.INLINE_INDEX_CLEANUP_BYTES) the erasure
-- vacuums the heap alone (the old versions' data is gone, their line pointers stay as dead stubs
-- that the indexes point to) and queues the partitions here; the next
-- `python -m gdpr.process_privacy_requests --finish-vacuum` (a nightly job of the scheduler, or the
-- --watch processor when it is idle) does the full VACUUM and empties the queue.
CREATE TABLE IF NOT EXISTS erasure_index_cleanup (
    partition_name  TEXT PRIMARY KEY,
    queued_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON erasure_index_cleanup TO gdpr_processor;
GRANT SELECT ON erasure_index_cleanup TO privacy_auditor;
