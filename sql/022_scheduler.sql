-- 022: the scheduler (issue 16). python -m scheduler runs the platform's periodic jobs (the nightly
-- batch and comparison, the daily and weekly reports, retention, the hourly check of privacy
-- requests' deadlines), each job a command that logs in as its own component, and records every
-- run here, as a login of its own.
--   * scheduler_runs: one row per run: the job, the time it was due (scheduled_for), when it started
--     and finished, its outcome, and one line on a failure (the exit status and the command's last
--     line, never personal data) or on what an ok run found or why a run was skipped.
--   * The double-start guard: a run claims its (job, scheduled_for) by inserting a 'running' row;
--     the partial unique index lets only one running or successful row exist per slot, so a second
--     scheduler (or a second `run-once`) that tries the same slot inserts nothing and records a
--     'skipped' row instead. A failed slot may be tried again (catch-up does).
--   * scheduler_runner and its login login_scheduler, as in sql/015 and sql/018: its own runs, and of
--     privacy_requests only the id, status and due date (never an email or a proof).

CREATE TABLE IF NOT EXISTS scheduler_runs (
    id             BIGSERIAL PRIMARY KEY,
    job            TEXT NOT NULL,
    scheduled_for  TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    finished_at    TIMESTAMPTZ,
    outcome        TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'skipped')),
    -- One line each, so nothing a command printed over several lines (a traceback) is kept.
    error          TEXT CHECK (error IS NULL OR (length(error) <= 1000 AND position(E'\n' IN error) = 0)),
    detail         TEXT CHECK (detail IS NULL OR (length(detail) <= 1000 AND position(E'\n' IN detail) = 0)),
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);

CREATE UNIQUE INDEX IF NOT EXISTS scheduler_runs_one_claim_per_slot ON scheduler_runs (job, scheduled_for)
    WHERE outcome IN ('running', 'ok');
-- A job's latest runs and its latest success (status, catch-up).
CREATE INDEX IF NOT EXISTS scheduler_runs_job_idx ON scheduler_runs (job, started_at DESC);

-- Group roles and component logins, made the same way by every migration from here on (the rules
-- of sql/015 and sql/018, written once): platform_group_role makes a NOLOGIN group role the
-- migrator belongs to; platform_component_login makes a login that is a member of its own group
-- only (any other membership revoked), and refuses a role of that name that may do more.
CREATE OR REPLACE FUNCTION platform_group_role(name TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', name);
    END IF;
    EXECUTE format('GRANT %I TO %I', name, current_user);
END;
$$;
REVOKE ALL ON FUNCTION platform_group_role(TEXT) FROM PUBLIC;

CREATE OR REPLACE FUNCTION platform_component_login(login TEXT, own_group TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    other TEXT;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT', login);
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
END;
$$;
REVOKE ALL ON FUNCTION platform_component_login(TEXT, TEXT) FROM PUBLIC;

SELECT platform_group_role('scheduler_runner');

-- Its own runs: claimed, finished, never deleted or rewritten after the fact (no DELETE, and UPDATE of
-- the columns a run's end sets only).
GRANT SELECT, INSERT ON scheduler_runs TO scheduler_runner;
GRANT UPDATE (finished_at, outcome, error, detail) ON scheduler_runs TO scheduler_runner;
GRANT USAGE ON SEQUENCE scheduler_runs_id_seq TO scheduler_runner;
-- The hourly deadline check: which open requests are due soon or overdue, by id.
GRANT SELECT (id, status, due_at) ON privacy_requests TO scheduler_runner;

-- The login, a member of its own group only (the same rules as sql/015's).
SELECT platform_component_login('login_scheduler', 'scheduler_runner');
