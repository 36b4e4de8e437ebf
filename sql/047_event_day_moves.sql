-- 047: a day's events are never read as missing while they move out of events_raw's default
-- partition (issue 29). events_raw_create_partitions (sql/021, sql/030) moves a day's rows from the
-- default partition into the day's new partition and attaches it, in one transaction. A reader
-- whose query was planned before that commit (it waited for the default partition's lock held by
-- ATTACH) scans the default partition alone with a snapshot taken after it: the rows are gone.
-- A REPEATABLE READ reader whose snapshot predates the commit and which plans after it scans the
-- new partition, whose rows it cannot see. Either reads the day as empty (the batch once recorded
-- nothing for 42 days that the catch-up retention run moved under it).
--   * A coordination lock, event_days (sql/030's kind): a move of rows takes it exclusively, as the
--     function's owner, before its ATTACH; the readers of events_raw by day (the batch, the
--     analyses' summaries, person_days, the reports, erasure and access) take it shared, first
--     in their transaction, through events_raw_hold_days. Either the move commits before the
--     reader's statements plan and take their snapshots, or it waits for the reader to finish.
--     A day with nothing in the default partition takes no lock: creating the days ahead never
--     waits for a reader.
--   * A REPEATABLE READ snapshot is taken at the start of the statement that takes the lock, before
--     any wait: a move that committed in between would hide the day. Each move records its
--     transaction id in a sequence (read outside MVCC); a snapshot that cannot see the latest
--     move's transaction gets serialization_failure (40001), and the reader starts again.
--   * The nightly run of the default partition's days (sql/029) moves each day under a savepoint:
--     a day being read (the move's lock wait, 2 s, ends) stays for the next night, the others move.

CREATE TABLE IF NOT EXISTS platform_lock_event_days () WITH (autovacuum_enabled = false);
REVOKE ALL ON platform_lock_event_days FROM PUBLIC;

-- last_value: the transaction id (xid8 as a number) of the latest move of rows out of the default partition.
CREATE SEQUENCE IF NOT EXISTS events_raw_day_moves;
REVOKE ALL ON SEQUENCE events_raw_day_moves FROM PUBLIC;

INSERT INTO platform_lock_grants (name, grantee, exclusive) VALUES
    ('event_days', current_user, true),
    ('event_days', 'batch_writer', false),
    ('event_days', 'gdpr_processor', false),
    ('event_days', 'analytics_reader', false)
ON CONFLICT DO NOTHING;

-- Holds the event_days lock shared until the transaction ends, waiting p_wait_ms at most (55P03
-- past it); in a REPEATABLE READ transaction whose snapshot misses a move, 40001.
CREATE OR REPLACE FUNCTION events_raw_hold_days(p_wait_ms INTEGER) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    last_move BIGINT;
BEGIN
    PERFORM platform_lock('event_days', false, p_wait_ms);
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        last_move := pg_sequence_last_value('events_raw_day_moves');
        IF last_move IS NOT NULL AND NOT pg_visible_in_snapshot(last_move::text::xid8, pg_current_snapshot()) THEN
            RAISE EXCEPTION 'events moved into their day''s partition after this transaction''s snapshot: start it again'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_hold_days(INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION events_raw_hold_days(INTEGER) TO batch_writer, gdpr_processor, analytics_reader;

CREATE OR REPLACE FUNCTION events_raw_create_partitions(first_day DATE, last_day DATE) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET datestyle = 'ISO, YMD' SET lock_timeout = '2s' AS $$
DECLARE
    day DATE;
    name TEXT;
    created INTEGER := 0;
    moved BIGINT;
    covered DATE[];
BEGIN
    IF first_day IS NULL OR last_day IS NULL OR first_day > last_day THEN
        RAISE EXCEPTION 'no days from % to %', first_day, last_day USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF first_day < DATE '2000-01-01' OR last_day > (now() AT TIME ZONE 'UTC')::date + 31 OR last_day - first_day > 3700 THEN
        RAISE EXCEPTION 'partitions from % to % are out of the accepted range', first_day, last_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One caller at a time: two sink instances crossing midnight together create each day once.
    LOCK TABLE platform_lock_event_partitions IN EXCLUSIVE MODE;
    -- The days some partition already covers (bounds read from the catalogue; ranges of any width).
    SELECT coalesce(array_agg(d::date), '{}') INTO covered
    FROM (
        SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([0-9-]+)''\)')::date AS lower_day,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([0-9-]+)''\)')::date AS upper_day
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events_raw'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
    ) AS b,
    generate_series(greatest(b.lower_day, first_day), least(b.upper_day - 1, last_day), interval '1 day') AS d
    WHERE b.lower_day IS NOT NULL AND b.upper_day IS NOT NULL;
    day := first_day;
    WHILE day <= last_day LOOP
        IF NOT day = ANY(covered) THEN
            name := 'events_raw_' || to_char(day, 'YYYYMMDD');
            EXECUTE format('CREATE TABLE %I (LIKE events_raw INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', name);
            -- The day lock is taken BEFORE the rows are deleted (and before ATTACH locks the default
            -- partition): a reader or an erasure holding the day (shared, then updating its rows)
            -- waits for nothing of ours, so the two cannot deadlock; one that comes later waits for
            -- our commit (header above). A plain EXISTS locks no row.
            IF EXISTS (SELECT 1 FROM events_raw_default WHERE event_date = day) THEN
                LOCK TABLE platform_lock_event_days IN EXCLUSIVE MODE;
                PERFORM setval('events_raw_day_moves', pg_current_xact_id()::text::bigint);
            END IF;
            EXECUTE format('WITH moved AS (DELETE FROM events_raw_default WHERE event_date = %L RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved', day, name);
            GET DIAGNOSTICS moved = ROW_COUNT;
            IF moved > 0 THEN
                -- Rows that arrived after the EXISTS: the lock now (a no-op when already held).
                LOCK TABLE platform_lock_event_days IN EXCLUSIVE MODE;
                PERFORM setval('events_raw_day_moves', pg_current_xact_id()::text::bigint);
            END IF;
            -- The constraint lets ATTACH skip its scan of the new table.
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (event_date >= %L AND event_date < %L)',
                           name, name || '_day', day, day + 1);
            EXECUTE format('ALTER TABLE events_raw ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, day, day + 1);
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_day');
            PERFORM events_raw_grant_maintenance(name);
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_create_partitions(DATE, DATE) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION events_raw_create_partitions(DATE, DATE) TO ingest_writer, retention_worker;

CREATE OR REPLACE FUNCTION events_raw_partition_default_days(oldest_day DATE) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    day DATE;
    created INTEGER := 0;
BEGIN
    IF oldest_day IS NULL THEN
        RAISE EXCEPTION 'no oldest day' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR day IN
        SELECT DISTINCT event_date FROM events_raw_default
        WHERE event_date >= greatest(oldest_day, DATE '2000-01-01')
          AND event_date <= (now() AT TIME ZONE 'UTC')::date + 31
        ORDER BY 1
    LOOP
        BEGIN
            created := created + events_raw_create_partitions(day, day);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            -- A reader holds the days (or a sink the partitions): this day waits for the next run.
            RAISE NOTICE 'the events of % stay in the default partition: a reader holds them', day;
        END;
    END LOOP;
    RETURN created;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_partition_default_days(DATE) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION events_raw_partition_default_days(DATE) TO retention_worker;
