-- 027: the days each person's events are on, so that an erasure reads those days and not the
-- history.
--
-- events_raw is partitioned by day (sql/021), and a person's events may be on any day: without
-- this, each batch of an erasure searched the user_id index of every day, which for 1,000 people
-- reads nearly every leaf page of every day's index (2.5-3.7 s warm, 13.7 s cold per batch over
-- 50M events and 400 days, measured). With it the erasure searches, in full, only the days no
-- list covers exactly (today, yesterday, days that received events after their list was built),
-- and for the other days looks each person up in their own days' partitions.
--
--   * person_days: a person's days, sorted, for the closed days built so far. Its rows are
--     personal data of the same kind as events_raw's user_id: an erasure deletes the person's
--     row; each build first takes out the days retention dropped (those before the oldest day
--     that still has a partition).
--   * person_days_built: the closed days whose lists are built (gdpr.person_days, a nightly job).
--   * person_days_changes: a closed day that received rows after the fact. The statement trigger
--     below notes (day, writing transaction) for every insert into events_raw of a day that has
--     ended (by the clock, when the rows are written). A build deletes the notes its own snapshot
--     sees, so a note left behind is of rows the build did not see: that day is searched in full
--     until it is built again. The trigger is on the parent, which every writer of events_raw
--     goes through (the sinks' COPY, INSERT ... SELECT, the migrations); rows moved from the
--     default partition into a day's new one (sql/021) are the same rows, for the same people.
--
-- A day is built only once it has been over for a while (gdpr.person_days.CLOSED_AFTER): rows of
-- a day written just before midnight by a transaction still open when the build reads are not
-- noted (the day was open) and not seen (not committed); the wait covers such a transaction.
CREATE TABLE IF NOT EXISTS person_days (
    user_id  UUID PRIMARY KEY,
    days     DATE[] NOT NULL
);
-- Retention finds the people whose first day it removes without reading everybody's row.
CREATE INDEX IF NOT EXISTS person_days_first_day_idx ON person_days ((days[1]));

CREATE TABLE IF NOT EXISTS person_days_built (
    event_date  DATE PRIMARY KEY,
    built_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS person_days_changes (
    event_date  DATE NOT NULL,
    changed_by  XID8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (event_date, changed_by)
);

-- The sorted, distinct union of two lists of days.
CREATE OR REPLACE FUNCTION person_days_merge(a DATE[], b DATE[]) RETURNS DATE[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT d ORDER BY d), '{}') FROM unnest(a || b) AS d
$$;

-- The owner's function, so that no writer of events_raw needs a privilege on the notes.
CREATE OR REPLACE FUNCTION events_raw_note_closed_days() RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO person_days_changes (event_date)
    SELECT DISTINCT event_date FROM added WHERE event_date < (clock_timestamp() AT TIME ZONE 'UTC')::date
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION events_raw_note_closed_days() FROM PUBLIC;

DROP TRIGGER IF EXISTS events_raw_closed_days ON events_raw;
CREATE TRIGGER events_raw_closed_days AFTER INSERT ON events_raw
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION events_raw_note_closed_days();

GRANT SELECT, INSERT, UPDATE, DELETE ON person_days, person_days_built, person_days_changes TO gdpr_processor;
-- The days of the rows in the default partition (days with no partition of their own), which an
-- erasure searches in full and a build lists.
GRANT SELECT (event_date) ON events_raw_default TO gdpr_processor;
