-- 024: the live dashboard (issue 16). python -m dashboard shows, on one page refreshed every few
-- seconds, what the pipeline and the privacy processes are doing right now, as a login of its own
-- that reads counts and progress only, never personal data.
--   * dashboard_reader and its login login_dashboard, as in sql/015, sql/018 and sql/022: SELECT on
--     what the page shows and nothing else: the consumers' progress (offsets, recent batches, live
--     instances), today's streaming metrics, of privacy_requests the id, type, status and due date
--     (never an email, a proof or an outcome), of scheduler_runs the job, due time, end and outcome
--     (never the error or detail lines), of dead_letter_events the reason and the time (never the
--     payload, its place in Kafka or its group).
--   * An index on dead_letter_events (received_at): the page counts the last hour's dead letters by
--     reason every few seconds, and retention deletes them by the same column; without it both read
--     the whole table.

CREATE INDEX IF NOT EXISTS dead_letter_events_received_idx ON dead_letter_events (received_at);

SELECT platform_group_role('dashboard_reader');

-- Throughput per group over the last minutes, freshness, live instances and a lost broker; the lag
-- is Kafka's end offsets minus the stored ones. No column of these tables says who.
GRANT SELECT ON consumer_offsets, consumer_batches, consumer_instances TO dashboard_reader;
-- Today's events per type (the funnel) and revenue: aggregates, kept after every erasure.
GRANT SELECT (event_date, event_type, total_events, total_amount) ON metrics_streaming_daily TO dashboard_reader;
-- Open requests counted by how close their deadline is (Art. 12(3)).
GRANT SELECT (id, request_type, status, due_at) ON privacy_requests TO dashboard_reader;
-- The latest run of each scheduled job and how it ended.
GRANT SELECT (job, scheduled_for, finished_at, outcome) ON scheduler_runs TO dashboard_reader;
-- The last hour's dead letters counted by reason.
GRANT SELECT (reason, received_at) ON dead_letter_events TO dashboard_reader;

-- The login, a member of its own group only (the same rules as sql/015's).
SELECT platform_component_login('login_dashboard', 'dashboard_reader');
