-- 030: coordination locks that only the components that need them can take (issue 26). Until now
-- the platform coordinated through advisory locks, whose keys any login may take: login_dashboard
-- holding pg_advisory_lock(715003) stopped the raw consumer, holding 715004 every audit write.
--   * One empty table per lock (platform_lock_<name>), locked with LOCK TABLE, which needs a
--     privilege nobody but the owner holds on these tables: shared is SHARE mode, exclusive is
--     EXCLUSIVE mode (neither conflicts with ACCESS SHARE, the one mode a plain SELECT would take).
--     A table lock gives the transaction no xid, so a lock held for long (a build, a seed) holds
--     back no vacuum.
--   * platform_lock(name, exclusive) takes one for the transaction, as its owner, when the calling
--     login's group role is granted that lock in that mode (platform_lock_grants); anyone else
--     gets insufficient_privilege. Every wait is bounded (p_wait_ms; core.locks).
--   * The privacy API's per-address lock: a row of platform_lock_addresses (4,096 buckets of the
--     address's keyed HMAC) locked FOR UPDATE by privacy_api_lock_address(), for privacy_api only.
--   * events_raw_create_partitions (sql/021) is redefined with its lock on a lock table; its body
--     is otherwise the same.

CREATE TABLE IF NOT EXISTS platform_lock_grants (
    name      TEXT NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,40}$'),
    grantee   NAME NOT NULL,
    exclusive BOOLEAN NOT NULL,
    PRIMARY KEY (name, grantee, exclusive)
);
REVOKE ALL ON platform_lock_grants FROM PUBLIC;

-- The locks and who may take them how. The migration owner (and the operators' tools that log in
-- as it: the migrator, the user seeder) may take every lock as a member of every group role.
DO $$
DECLARE
    lock_name TEXT;
BEGIN
    FOREACH lock_name IN ARRAY ARRAY['erasure', 'audit_chain', 'event_partitions', 'person_days_build', 'user_seed'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I () WITH (autovacuum_enabled = false)', 'platform_lock_' || lock_name);
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', 'platform_lock_' || lock_name);
    END LOOP;
END;
$$;
INSERT INTO platform_lock_grants (name, grantee, exclusive) VALUES
    -- Erasure re-keys a person's events exclusively; each raw batch, each retention delete and
    -- each person_days merge holds it shared.
    ('erasure', 'gdpr_processor', true),
    ('erasure', 'ingest_writer', false),
    ('erasure', 'retention_worker', false),
    ('erasure', 'gdpr_processor', false),
    -- The audit chain's writers, one at a time (taken inside the chain trigger as its owner).
    ('audit_chain', current_user, true),
    ('event_partitions', current_user, true),
    ('person_days_build', 'gdpr_processor', true),
    ('user_seed', current_user, true)
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION platform_lock(p_name TEXT, p_exclusive BOOLEAN, p_wait_ms INTEGER) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    previous TEXT := current_setting('lock_timeout');
BEGIN
    -- session_user: the login that connected (SECURITY DEFINER changes current_user only).
    IF NOT EXISTS (SELECT FROM platform_lock_grants g
                   WHERE g.name = p_name AND g.exclusive = p_exclusive
                     AND pg_has_role(session_user, g.grantee, 'MEMBER')) THEN
        RAISE EXCEPTION 'login % may not take the % lock %', session_user,
            CASE WHEN p_exclusive THEN 'exclusive' ELSE 'shared' END, p_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_wait_ms IS NULL OR p_wait_ms < 1 THEN
        RAISE EXCEPTION 'a lock wait must be bounded: % ms', p_wait_ms USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The wait is bounded (55P03 lock_not_available past it); the caller's own timeout comes back after.
    PERFORM set_config('lock_timeout', p_wait_ms::text, true);
    EXECUTE format('LOCK TABLE %I IN %s MODE', 'platform_lock_' || p_name,
                   CASE WHEN p_exclusive THEN 'EXCLUSIVE' ELSE 'SHARE' END);
    PERFORM set_config('lock_timeout', previous, true);
END;
$$;
REVOKE ALL ON FUNCTION platform_lock(TEXT, BOOLEAN, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform_lock(TEXT, BOOLEAN, INTEGER) TO gdpr_processor, ingest_writer, retention_worker;

-- The privacy API counts and files one address's requests one at a time. 4,096 buckets: two
-- addresses share one a time in 4,096, and then merely wait for each other's short transaction.
CREATE TABLE IF NOT EXISTS platform_lock_addresses (bucket INTEGER PRIMARY KEY);
REVOKE ALL ON platform_lock_addresses FROM PUBLIC;
INSERT INTO platform_lock_addresses (bucket) SELECT generate_series(0, 4095) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION privacy_api_lock_address(p_proof TEXT) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM FROM platform_lock_addresses WHERE bucket = hashtext(p_proof) & 4095 FOR UPDATE;
END;
$$;
REVOKE ALL ON FUNCTION privacy_api_lock_address(TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION privacy_api_lock_address(TEXT) TO privacy_api;

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
    -- A lock table only this function's owner may lock (was an advisory lock any login could hold).
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
GRANT EXECUTE ON FUNCTION events_raw_create_partitions(DATE, DATE) TO ingest_writer, retention_worker;
