-- 032: a running scheduler run names the connection that runs it (issue 26). Until now the run
-- held a session advisory lock keyed on its id, and "alive" meant "someone holds that key": any
-- login could take a future run's key (the claim then waited for it) or hold a dead run's (it then
-- looked alive for ever). Now the claim records its own backend's pid and start time, which only
-- the server assigns and only the scheduler's login may write here; a run is alive while a
-- session of the scheduler's login with that pid and start time exists (pg_stat_activity).
ALTER TABLE scheduler_runs
    ADD COLUMN IF NOT EXISTS holder_pid INTEGER,
    ADD COLUMN IF NOT EXISTS holder_started TIMESTAMPTZ;
