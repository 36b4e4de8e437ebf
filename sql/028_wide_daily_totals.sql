-- 028: daily totals that cannot overflow (issue 26). NUMERIC(16, 2) held 99,999,999,999,999.99:
-- eleven requests of 1,000 purchases of 9,999,999,999.99 filled it, after which the streaming
-- consumer refused that day's purchases, the nightly batch job failed on the day every night and
-- the reconciliation reported drift for ever. A day's total is at most its event count (a BIGINT,
-- below 9.3e18) times the largest amount an event may carry (events_raw.amount, NUMERIC(12, 2),
-- below 1e10; MAX_EVENT_AMOUNT, by default 1e6): below 1e29, so 36 digits before the point are
-- out of reach at any rate. The design fixes the columns' names, not their types; the repairs'
-- record of the figures before a repair holds the same totals.
ALTER TABLE metrics_streaming_daily ALTER COLUMN total_amount TYPE NUMERIC(38, 2);
ALTER TABLE metrics_batch_daily ALTER COLUMN total_amount TYPE NUMERIC(38, 2);
ALTER TABLE metrics_repairs
    ALTER COLUMN streaming_revenue TYPE NUMERIC(38, 2),
    ALTER COLUMN batch_revenue TYPE NUMERIC(38, 2);
