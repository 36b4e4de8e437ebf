-- 018: storage limitation (GDPR Art. 5(1)(e), issue 15). python -m gdpr.retention removes what is
-- older than its configured retention, per kind of data, as a login of its own, and records each
-- run; the aggregates (the daily metrics), the audit trail and the requests' proofs stay.
--   * retention_runs: one row per kind of data per run (dry runs too), for the GDPR audit report.
--   * privacy_requests.residue_removed_at: when retention cleared a processed request's residual
--     data (outcome, export and secret columns, corrections); its id, type, status, channel, dates
--     and the keyed HMAC of the email (the proof) stay.
--   * retention_worker and its login login_retention, as in sql/015: what retention removes, and
--     nothing it does not need to read (no user id, no metadata, no payload, no email).
--   * retention_drop_event_partitions: once events_raw is partitioned by day, its whole partitions
--     older than the cutoff are dropped, which only the owner may do.
--   * The audit report reads the runs and how old the oldest data still held is.

CREATE TABLE IF NOT EXISTS retention_runs (
    id           BIGSERIAL PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind         TEXT NOT NULL CHECK (kind IN ('raw_events', 'dead_letters', 'access_exports', 'privacy_requests',
                                               'dpo_sessions', 'verification_codes', 'reports')),
    -- Data older than this day (UTC) went; for DPO sessions and used codes, the day of the run.
    cutoff       DATE NOT NULL,
    removed      BIGINT NOT NULL CHECK (removed >= 0),
    dry_run      BOOLEAN NOT NULL
);

ALTER TABLE privacy_requests ADD COLUMN IF NOT EXISTS residue_removed_at TIMESTAMPTZ;

DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['retention_worker'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
        EXECUTE format('GRANT %I TO %I', name, current_user);
    END LOOP;
END;
$$;

-- Raw events and dead letters go by their day (DELETE with a WHERE needs SELECT on its columns); a
-- chunk of events is picked by its rows' physical places (ctid), no column of what they hold.
GRANT SELECT (event_date, ctid), DELETE ON events_raw TO retention_worker;
GRANT SELECT (id, received_at), DELETE ON dead_letter_events TO retention_worker;
-- Processed requests lose their residue; access exports past their download period are deleted by
-- the processor's own sweep (gdpr.housekeeping), which records export_deleted in the audit trail
-- (appending reads the last row's hash: sql/013) and forgets the codes of requests no longer
-- waiting for them. The email, the corrections, the outcome and the secret's hash can be cleared,
-- never read.
GRANT SELECT (id, status, processed_at, residue_removed_at, export_path, export_expires_at) ON privacy_requests
    TO retention_worker;
GRANT UPDATE (email, outcome, corrections, secret_hash, export_path, export_expires_at, export_downloaded_at,
              residue_removed_at) ON privacy_requests TO retention_worker;
GRANT SELECT (request_id), DELETE ON privacy_verifications TO retention_worker;
GRANT SELECT (expires_at), DELETE ON dpo_sessions TO retention_worker;
GRANT SELECT (id, row_hash), INSERT ON privacy_audit_log TO retention_worker;
GRANT USAGE ON SEQUENCE privacy_audit_log_id_seq TO retention_worker;
GRANT SELECT, INSERT ON retention_runs TO retention_worker;
GRANT USAGE ON SEQUENCE retention_runs_id_seq TO retention_worker;

-- The login, a member of its own group only (the same rules as sql/015's).
DO $$
DECLARE
    pair TEXT[];
    login TEXT;
    own_group TEXT;
    other TEXT;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ['login_retention', 'retention_worker']
    ] LOOP
        login := pair[1];
        own_group := pair[2];
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
                           login);
        ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = login
                      AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % exists and may do more than a component login: drop it, then migrate again', login;
        END IF;
        FOR other IN
            SELECT g.rolname FROM pg_auth_members m
            JOIN pg_roles g ON g.oid = m.roleid
            JOIN pg_roles u ON u.oid = m.member
            WHERE u.rolname = login AND g.rolname <> own_group
        LOOP
            EXECUTE format('REVOKE %I FROM %I', other, login);
        END LOOP;
        EXECUTE format('GRANT %I TO %I', own_group, login);
    END LOOP;
END;
$$;

-- Dropping a partition needs the table's owner, so the owner does it here, for partitions of a table
-- named events_raw (the platform's; a test's copy in a schema of its own) partitioned by range of
-- event_date alone, whose upper bound is at or before the cutoff: partitions holding only days
-- older than it. A DEFAULT partition and one up to MAXVALUE are never dropped (they may hold any
-- day). Oldest first, at most max_partitions of them (NULL: all); each is counted, then detached
-- and dropped, unless dry_run. The caller could delete those rows anyway (DELETE on events_raw),
-- and a cutoff after today is refused. lock_timeout: DETACH waits for the parent's exclusive lock,
-- and every insert would queue behind it; better to fail and try again later.
CREATE OR REPLACE FUNCTION retention_drop_event_partitions(
    parent REGCLASS, cutoff DATE, dry_run BOOLEAN, max_partitions INTEGER DEFAULT NULL
) RETURNS TABLE (partition_name TEXT, first_day DATE, last_day DATE, row_count BIGINT)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET datestyle = 'ISO, YMD' SET lock_timeout = '5s' AS $$
DECLARE
    part RECORD;
BEGIN
    IF cutoff IS NULL OR cutoff > (now() AT TIME ZONE 'UTC')::date THEN
        RAISE EXCEPTION 'the retention cutoff % is after today (UTC)', cutoff USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_class c
        JOIN pg_partitioned_table p ON p.partrelid = c.oid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'event_date'
        WHERE c.oid = parent AND c.relname = 'events_raw' AND p.partstrat = 'r' AND p.partnatts = 1
          AND p.partattrs[0] = a.attnum
    ) THEN
        RAISE EXCEPTION '% is not an events_raw table partitioned by range of event_date', parent
            USING ERRCODE = 'wrong_object_type';
    END IF;
    FOR part IN
        SELECT b.child, b.upper_day FROM (
            SELECT i.inhrelid::regclass AS child,
                   substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([0-9-]+)''\)')::date AS upper_day
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = parent
        ) AS b
        WHERE b.upper_day <= cutoff
        ORDER BY b.upper_day
        LIMIT max_partitions
    LOOP
        partition_name := part.child::text;
        EXECUTE format('SELECT min(event_date), max(event_date), count(*) FROM %s', part.child)
            INTO first_day, last_day, row_count;
        IF NOT dry_run THEN
            EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, part.child);
            EXECUTE format('DROP TABLE %s', part.child);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION retention_drop_event_partitions(REGCLASS, DATE, BOOLEAN, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention_drop_event_partitions(REGCLASS, DATE, BOOLEAN, INTEGER) TO retention_worker;

-- The audit report: what retention removed, and the oldest data still held (days and times only).
GRANT SELECT ON retention_runs TO privacy_auditor;
GRANT SELECT (event_date) ON events_raw TO privacy_auditor;
GRANT SELECT (residue_removed_at) ON privacy_requests TO privacy_auditor;
