-- 012: two fixes found in review.
--   * consent_ledger.txid: the transaction that wrote each row. The consumers read again
--     everything written by transactions that were still running at their last read (from
--     pg_snapshot_xmin on), so a row whose transaction commits late (an erasure of a thousand
--     people, a psql session left open) is still seen. recorded_at could not tell that: it is the
--     insert's time, not the commit's.
--   * collector_write_keys.may_record_consent: a key embedded in a web page is public, and with it
--     anybody could record consent for anybody. Only keys issued for it may record consent
--     (POST /v1/consent); the others may send events only.

ALTER TABLE consent_ledger ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS consent_ledger_txid_idx ON consent_ledger (txid);

-- Both are the database's, whatever the writer says: the consumers' incremental reads depend on them.
CREATE OR REPLACE FUNCTION consent_ledger_recorded_now() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_at := clock_timestamp();
    NEW.txid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

GRANT SELECT (txid) ON consent_ledger TO ingest_writer;

ALTER TABLE collector_write_keys ADD COLUMN IF NOT EXISTS may_record_consent BOOLEAN NOT NULL DEFAULT false;
GRANT SELECT (may_record_consent) ON collector_write_keys TO event_collector;
