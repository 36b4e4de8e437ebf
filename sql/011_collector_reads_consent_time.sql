-- 011: the collector answers a consent change with the time it takes effect, which it reads back
-- from the row it inserted (INSERT ... RETURNING needs SELECT on the column).
GRANT SELECT (effective_at) ON consent_ledger TO event_collector;
