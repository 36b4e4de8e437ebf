-- 015: one login per component (issue 14). Until now every component connected as the migration
-- owner and switched to its group role with SET ROLE, which RESET ROLE undid. Now each component
-- connects with a login of its own that is a member of its own group role and of nothing else:
-- it has that group's privileges from the moment it connects, and no SET ROLE or RESET ROLE
-- gives it more. The owner's login is for migrations (and operators' tools) alone.
--   * Two more groups for what still ran as the owner: batch_writer (the batch metrics, the
--     comparison and its repair) and pipeline_monitor (consumer status, lag, dead letters).
--   * The logins carry no password here: core.db.migrate sets each one from configuration
--     (DB_PASSWORD_*) after every run; until then a login cannot log in.
--   * The owner loses UPDATE, DELETE and TRUNCATE on the audit trail, like every group (014).

DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['batch_writer', 'pipeline_monitor'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
        EXECUTE format('GRANT %I TO %I', name, current_user);
    END LOOP;
END;
$$;

-- The batch layer: a day's metrics recomputed from the events (never who: no user_id, no
-- metadata). The repair rewrites a closed day's streaming rows, records each in metrics_repairs,
-- and meanwhile holds both consumer groups' stored offsets (SELECT ... FOR UPDATE needs an UPDATE
-- privilege: on the bookkeeping column only, never the offsets).
GRANT SELECT (event_date, event_type, amount) ON events_raw TO batch_writer;
GRANT SELECT, INSERT, DELETE ON metrics_batch_daily, metrics_streaming_daily TO batch_writer;
GRANT INSERT ON metrics_repairs TO batch_writer;
GRANT USAGE ON SEQUENCE metrics_repairs_id_seq TO batch_writer;
GRANT SELECT (consumer_group, topic, partition, next_offset), UPDATE (updated_at) ON consumer_offsets TO batch_writer;

-- Watching the consumers: progress, rates, live instances and the dead letters (stored redacted).
GRANT SELECT ON consumer_offsets, consumer_batches, consumer_instances TO pipeline_monitor;
GRANT SELECT (id, consumer_group, topic, kafka_partition, kafka_offset, reason, detail, payload, received_at)
    ON dead_letter_events TO pipeline_monitor;

-- The logins, each a member of its own group only. A role of that name made before this file ran
-- is refused if it holds any power of its own, and loses any other membership it was given.
DO $$
DECLARE
    pair TEXT[];
    login TEXT;
    own_group TEXT;
    other TEXT;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ['login_collector', 'event_collector'],
        ['login_consumers', 'ingest_writer'],
        ['login_gdpr', 'gdpr_processor'],
        ['login_privacy_api', 'privacy_api'],
        ['login_console', 'dpo_console'],
        ['login_reports', 'analytics_reader'],
        ['login_auditor', 'privacy_auditor'],
        ['login_batch', 'batch_writer'],
        ['login_monitor', 'pipeline_monitor']
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

-- Nobody rewrites history: the owner loses the privileges too (a superuser keeps them, and the
-- triggers still refuse it). The owner can grant them back, which is why the trail is also a hash
-- chain that python -m gdpr.verify_audit checks.
DO $$
BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON privacy_audit_log FROM %I',
                   (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'privacy_audit_log'));
END;
$$;
