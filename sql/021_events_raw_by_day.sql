-- 021: events_raw partitioned by day (issue 15). A day's work reads a day's partition, never the
-- history; retention drops whole days; a partition's indexes stay small enough to stay in memory.
--   * The table is converted in place, in this migration's one transaction: the old table is
--     locked, renamed and copied, row for row, into the new one, which takes its name, its
--     privileges (copied from the catalogue, table and column grants alike) and its indexes.
--     Consumers that run meanwhile wait for the lock and then write into the new table.
--   * Its key is (event_id, event_date): a partitioned table's unique keys must contain the
--     partition key. event_date is the UTC day of the event's own timestamp, so every copy of an
--     event (a producer that resends it, the collector's client retrying) falls into the same
--     partition and meets the key there: a duplicate is still ignored (README, guarantees).
--   * One partition per UTC day, created ahead of need (events_raw_create_partitions below; the
--     raw-events sink keeps a week ahead), and a DEFAULT partition that takes any event whose day
--     has no partition yet (a late event for a day never seen, one for a day retention removed):
--     no event is ever refused for want of a partition. Creating a partition for a day moves
--     that day's rows out of the default partition first.
--   * The BRIN index on event_date goes: a day is a partition. The one on ingested_at stays (the
--     batch layer's changed days, sql/020), as does the index on user_id (erasure, access).

LOCK TABLE events_raw IN ACCESS EXCLUSIVE MODE;
ALTER TABLE events_raw RENAME TO events_raw_unpartitioned;
-- The index names are free for the new table's; the copy needs none of them.
ALTER TABLE events_raw_unpartitioned DROP CONSTRAINT IF EXISTS events_raw_pkey;
DROP INDEX IF EXISTS events_raw_user_idx;
DROP INDEX IF EXISTS events_raw_date_brin;
DROP INDEX IF EXISTS events_raw_day_type_idx;
DROP INDEX IF EXISTS events_raw_ingested_brin;

CREATE TABLE events_raw (LIKE events_raw_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (event_date);
CREATE TABLE events_raw_default PARTITION OF events_raw DEFAULT;

-- VACUUM checks its privilege on each partition, not on the parent: without MAINTAIN on every
-- partition, the GDPR processor's VACUUM of events_raw after an erasure (sql/014) would skip them
-- all, and the old row versions holding an erased person's ids and values would wait for
-- autovacuum. Each partition gets it when it is created (PostgreSQL 17 and later; before, the
-- processor skips its vacuum, as it always has there).
CREATE OR REPLACE FUNCTION events_raw_grant_maintenance(partition_name TEXT) RETURNS VOID
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE format('GRANT MAINTAIN ON %I TO gdpr_processor', partition_name);
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_grant_maintenance(TEXT) FROM PUBLIC;
SELECT events_raw_grant_maintenance('events_raw_default');

-- Creates the daily partitions of events_raw for the days from first_day to last_day that have
-- none, and returns how many it created. The owner does it (creating a partition needs the
-- table's owner); the raw-events sink and the retention job call it. A day's rows that are in
-- the default partition move into its new partition in the same transaction. The partition is
-- created on its own and then attached: ATTACH takes a lock on events_raw that lets inserts and
-- reads go on (CREATE TABLE ... PARTITION OF would stop them), and the lock timeout makes a
-- caller that would have to wait give up and try later rather than hold everyone up. Days are
-- bounded: none before 2000 (no event is older, core.events), none more than 31 days ahead,
-- at most 3,700 in one call (ten years).
CREATE OR REPLACE FUNCTION events_raw_create_partitions(first_day DATE, last_day DATE) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET datestyle = 'ISO, YMD' SET lock_timeout = '2s' AS $$
DECLARE
    day DATE;
    name TEXT;
    created INTEGER := 0;
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
    PERFORM pg_advisory_xact_lock(hashtext('events_raw_create_partitions'));
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
            EXECUTE format('WITH moved AS (DELETE FROM events_raw_default WHERE event_date = %L RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved', day, name);
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

-- A partition for every day the old table holds, and for today and the week ahead.
SELECT events_raw_create_partitions(d, d)
FROM (SELECT DISTINCT event_date AS d FROM events_raw_unpartitioned) AS days
WHERE d >= DATE '2000-01-01' AND d <= (now() AT TIME ZONE 'UTC')::date + 31;
SELECT events_raw_create_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);

INSERT INTO events_raw SELECT * FROM events_raw_unpartitioned;

-- Indexes on the parent build one per partition, after the copy (a build, not row-by-row upkeep).
ALTER TABLE events_raw ADD CONSTRAINT events_raw_pkey PRIMARY KEY (event_id, event_date);
CREATE INDEX events_raw_user_idx ON events_raw (user_id);
CREATE INDEX events_raw_ingested_brin ON events_raw USING brin (ingested_at) WITH (pages_per_range = 32);

-- The old table's privileges, as they are (sql/003 onwards), on the new one.
DO $$
DECLARE
    g RECORD;
BEGIN
    FOR g IN
        SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'events_raw_unpartitioned'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON events_raw TO %s', g.privilege_type, g.grantee);
    END LOOP;
    FOR g IN
        SELECT att.attname, a.privilege_type,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
        FROM pg_attribute att CROSS JOIN LATERAL aclexplode(att.attacl) AS a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE att.attrelid = 'events_raw_unpartitioned'::regclass AND att.attacl IS NOT NULL
    LOOP
        EXECUTE format('GRANT %s (%I) ON events_raw TO %s', g.privilege_type, g.attname, g.grantee);
    END LOOP;
END;
$$;

DROP TABLE events_raw_unpartitioned;
ANALYZE events_raw;

-- Who creates partitions: the raw-events sink (today and the week ahead) and the retention job.
GRANT EXECUTE ON FUNCTION events_raw_create_partitions(DATE, DATE) TO ingest_writer, retention_worker;
