-- 025: the raw-events sink asks, before every batch, which of the batch's users have been erased
-- (their late events are re-keyed: consumers/store_raw_events.py). Probing the primary key for
-- each of a batch's thousand users cost 4 ms a batch; the erased users are few, and this index
-- holds only them, so the same question reads a handful of pages (none while nobody is erased).
-- The audit report's counts of erased people use it too.
CREATE INDEX IF NOT EXISTS users_pii_erased_idx ON users_pii (user_id) WHERE anonymized_at IS NOT NULL;
