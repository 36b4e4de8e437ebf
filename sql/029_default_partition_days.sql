-- 029: the nightly move of rows waiting in events_raw's default partition into their days (issue
-- 26). A raw-events batch creates at most PARTITIONS_PER_BATCH partitions of past days (one 50 KB
-- request once spread over 380 days made the sink create 380 in one transaction); the events of
-- the other days wait in the default partition. The nightly retention run (gdpr.retention, whose
-- login cannot read the default partition) calls this after deleting the rows older than the
-- retention: it creates the partition of every day the default partition still holds rows of,
-- from oldest_day on, which moves those rows in (events_raw_create_partitions, sql/021, with its
-- 2 s lock timeout and its bounds). Returns how many partitions it created.
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
        created := created + events_raw_create_partitions(day, day);
    END LOOP;
    RETURN created;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_partition_default_days(DATE) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION events_raw_partition_default_days(DATE) TO retention_worker;
