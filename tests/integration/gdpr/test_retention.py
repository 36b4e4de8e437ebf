"""Storage limitation (python -m gdpr.retention) on the real database, as its own login: what is
older than its retention goes, what is newer stays, the daily metrics and the audit trail are
untouched, a dry run changes nothing, and every run is recorded."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2.extensions
import pytest
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from core import cli, db, kafka
from core.config import RetentionSettings, Settings
from core.events import user_uuid
from gdpr import retention
from gdpr.retention import Removal, RetentionFailed, Run, apply_retention
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration

# Short retentions, so that the days around each cutoff are recent ones (raw events: 10 days).
SHORT = RetentionSettings(raw_event_days=10, dead_letter_days=5, privacy_request_days=20, report_days=15)


@pytest.fixture
def today() -> date:
    """The UTC day of each test, read when the test starts (a constant read at import was a day
    off for every test run after midnight UTC)."""
    return cli.today_utc()


def short(settings: Settings) -> Settings:
    return settings.model_copy(update={"retention": SHORT, "access_export_days": 3})


@contextmanager
def as_retention(settings: Settings) -> Iterator[psycopg2.extensions.connection]:
    """A connection as python -m gdpr.retention makes it: its own login."""
    with db.connection(settings.database, application_name="test_retention", role=db.RETENTION_ROLE) as conn:
        yield conn


def insert_events(settings: Settings, per_day: dict[date, int], table: str = "events_raw") -> None:
    """``n`` events on each day (the owner's insert: the consumers' checks are not under test)."""
    for day, n in per_day.items():
        query(
            settings,
            f"INSERT INTO {table} (event_id, user_id, event_type, event_timestamp, event_date, amount,"  # noqa: S608 - test names
            " kafka_partition, kafka_offset) SELECT gen_random_uuid(), %s, 'page_view', %s, %s, NULL, 0, g"
            " FROM generate_series(1, %s) AS g",
            (user_uuid(1), datetime(day.year, day.month, day.day, 12, tzinfo=UTC), day, n),
        )


def events_per_day(settings: Settings, table: str = "events_raw") -> dict[date, int]:
    rows = query(settings, f"SELECT event_date, count(*) FROM {table} GROUP BY 1")  # noqa: S608 - test names
    return {day: int(n) for day, n in rows}


def only_the_default_partition_before(settings: Settings, cutoff: date) -> None:
    """Drop the daily partitions of days before ``cutoff`` that earlier tests left (partitions
    outlive the tables' reset): those days' events then go to the default partition, whose old
    rows retention deletes in chunks, the path under test."""
    for (name,) in query(
        settings,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events_raw'::regclass AND c.relname ~ '^events_raw_[0-9]{8}$'"
        " AND to_date(substring(c.relname FROM 12), 'YYYYMMDD') < %s",
        (cutoff,),
    ):
        query(settings, f"ALTER TABLE events_raw DETACH PARTITION {name}")
        query(settings, f"DROP TABLE {name}")


def insert_metrics(settings: Settings, days: list[date]) -> list[tuple[object, ...]]:
    for table in ("metrics_batch_daily", "metrics_streaming_daily"):
        for day in days:
            query(
                settings,
                f"INSERT INTO {table} (event_date, event_type, total_events, total_amount) VALUES (%s, 'page_view', 7, 0)",  # noqa: S608
                (day,),
            )
    return metrics(settings)


def metrics(settings: Settings) -> list[tuple[object, ...]]:
    return query(
        settings,
        "SELECT 'batch', event_date, total_events FROM metrics_batch_daily"
        " UNION ALL SELECT 'streaming', event_date, total_events FROM metrics_streaming_daily ORDER BY 1, 2",
    )


def runs(settings: Settings) -> list[tuple[object, ...]]:
    return query(settings, "SELECT kind, cutoff, removed, dry_run FROM retention_runs ORDER BY id")


# -- raw events ---------------------------------------------------------------------------------


def test_raw_events_before_the_cutoff_are_deleted_in_chunks_and_the_metrics_stay(settings: Settings, today: date) -> None:
    cutoff = today - timedelta(days=10)  # raw events (SHORT)
    old, older, kept = cutoff - timedelta(days=1), cutoff - timedelta(days=3), cutoff
    only_the_default_partition_before(settings, cutoff)
    insert_events(settings, {older: 3, old: 5, kept: 4, today: 2})
    before = insert_metrics(settings, [older, old, kept])
    with as_retention(settings) as conn:
        removal = retention.remove_raw_events(Run(conn, short(settings), today, dry_run=False), chunk_rows=2)
    assert events_per_day(settings) == {kept: 4, today: 2}
    assert (removal.removed, removal.first, removal.last, removal.cutoff) == (8, older, old, cutoff)
    assert removal.summary() == f"raw events: 8 rows of {older}..{old} removed (cutoff {cutoff})"
    assert metrics(settings) == before


def test_a_dry_run_counts_changes_nothing_and_is_recorded_as_one(
    settings: Settings, capsys: pytest.CaptureFixture[str], today: date
) -> None:
    cutoff = today - timedelta(days=10)  # raw events (SHORT)
    old = cutoff - timedelta(days=2)
    only_the_default_partition_before(settings, cutoff)
    insert_events(settings, {old: 3, cutoff: 1})
    dead_letter(settings, 30)
    report = settings.reports_dir / f"business_report_{today - timedelta(days=100)}.md"
    report.parent.mkdir(parents=True)
    report.write_text("old")
    with as_retention(settings) as conn:
        removals = apply_retention(conn, short(settings), today=today, dry_run=True)
    assert events_per_day(settings) == {old: 3, cutoff: 1}
    assert query(settings, "SELECT count(*) FROM dead_letter_events") == [(1,)]
    assert report.exists()
    by_kind = {r.kind: r for r in removals}
    assert by_kind["raw_events"].summary() == f"raw events: 3 rows of {old} would be removed (cutoff {cutoff})"
    assert by_kind["dead_letters"].removed == 1 and by_kind["reports"].removed == 1
    assert {(kind, dry_run) for kind, _cutoff, _n, dry_run in runs(settings)} == {
        (kind, True) for kind in retention.LABELS
    }  # fmt: skip


def test_partitioned_raw_events_lose_whole_days_and_keep_the_rest(settings: Settings, today: date) -> None:
    """Once events_raw is partitioned by day, its old partitions are dropped whole by the owner's
    function (sql/018): here a copy of its shape in a schema of the test's own."""
    schema = f"retention_test_{uuid.uuid4().hex[:8]}"
    cutoff = today - timedelta(days=10)  # raw events (SHORT)
    table = f"{schema}.events_raw"
    days = [cutoff - timedelta(days=n) for n in (3, 2, 1)] + [cutoff, cutoff + timedelta(days=1)]
    query(settings, f"CREATE SCHEMA {schema}")
    try:
        query(settings, f"CREATE TABLE {table} (LIKE public.events_raw INCLUDING DEFAULTS) PARTITION BY RANGE (event_date)")
        for day in days:
            query(
                settings,
                f"CREATE TABLE {schema}.events_raw_{day:%Y%m%d} PARTITION OF {table}"
                f" FOR VALUES FROM ('{day}') TO ('{day + timedelta(days=1)}')",
            )
        # A DEFAULT partition may hold any day: it is never dropped; its old rows are deleted.
        query(settings, f"CREATE TABLE {schema}.events_raw_other PARTITION OF {table} DEFAULT")
        query(settings, f"GRANT USAGE ON SCHEMA {schema} TO retention_worker")
        query(settings, f"GRANT SELECT (event_date, ctid), DELETE ON {table} TO retention_worker")
        insert_events(settings, {days[0]: 2, days[1]: 0, days[2]: 3, days[3]: 4, days[4]: 1}, table)
        late = cutoff - timedelta(days=40)
        insert_events(settings, {late: 2, cutoff + timedelta(days=9): 1}, table)  # land in the DEFAULT partition

        with as_retention(settings) as conn:
            dry = retention.remove_raw_events(Run(conn, short(settings), today, dry_run=True, events_table=table))
            assert (dry.removed, dry.first, dry.last) == (7, late, days[2])  # each row counted once
            assert dry.note == "3 partitions would be dropped"
            assert sum(events_per_day(settings, table).values()) == 13  # nothing dropped
            removal = retention.remove_raw_events(
                Run(conn, short(settings), today, dry_run=False, events_table=table), chunk_rows=1
            )
        assert removal.summary() == f"raw events: 7 rows of {late}..{days[2]} removed (cutoff {cutoff}; 3 partitions dropped)"
        # The default partition's recent row stays; so do the days from the cutoff on.
        assert events_per_day(settings, table) == {days[3]: 4, days[4]: 1, cutoff + timedelta(days=9): 1}
        partitions = query(
            settings, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass"
            " ORDER BY 1", (table,),
        )  # fmt: skip
        assert partitions == [(f"events_raw_{days[3]:%Y%m%d}",), (f"events_raw_{days[4]:%Y%m%d}",), ("events_raw_other",)]
        # Dropped, not merely detached: the parent, two days and the DEFAULT partition are left.
        assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)) == [(4,)]
    finally:
        query(settings, f"DROP SCHEMA {schema} CASCADE")


def test_the_digests_of_erased_events_go_with_their_days(settings: Settings, today: date) -> None:
    """The digests that stop a re-sent copy of an erased event (sql/034) are kept only while the
    day's events are: one row per erased event would otherwise be kept for ever (sql/036)."""
    cutoff = today - timedelta(days=10)  # raw events (SHORT)
    old, kept = cutoff - timedelta(days=3), cutoff
    for day in (old, kept):
        query(
            settings,
            "INSERT INTO erased_event_digests (event_digest, event_date) VALUES (sha256(uuid_send(gen_random_uuid())), %s)",
            (day,),
        )
    with as_retention(settings) as conn:
        retention.remove_raw_events(Run(conn, short(settings), today, dry_run=True))
        assert query(settings, "SELECT count(*) FROM erased_event_digests") == [(2,)]  # a dry run removes nothing
        retention.remove_raw_events(Run(conn, short(settings), today, dry_run=False))
    assert query(settings, "SELECT event_date FROM erased_event_digests") == [(kept,)]


# -- dead letters, exports, requests, reports ---------------------------------------------------


def dead_letter(settings: Settings, received_days_ago: float) -> None:
    query(
        settings,
        "INSERT INTO dead_letter_events (consumer_group, topic, kafka_partition, kafka_offset, reason, payload, received_at)"
        " VALUES ('g', 't', 0, 1, 'not_json', 'x', now() - make_interval(secs => %s))",
        (received_days_ago * 86_400,),
    )


def test_dead_letters_before_the_cutoff_go_newer_ones_stay(settings: Settings, today: date) -> None:
    for days_ago in (40, 7, 6.1, 4, 0):
        dead_letter(settings, days_ago)
    with as_retention(settings) as conn:
        removal = retention.remove_dead_letters(Run(conn, short(settings), today, dry_run=False), chunk_rows=2)
    # Cutoff: the start of the UTC day 5 days ago; 4 and 0 days ago are after it.
    kept = query(settings, "SELECT received_at >= %s FROM dead_letter_events", (retention.midnight(today - timedelta(days=5)),))
    assert kept == [(True,), (True,)]
    assert removal.removed == 3 and removal.first == (datetime.now(UTC) - timedelta(days=40)).date()


def old_file(path: Path, days_ago: int, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    then = (datetime.now(UTC) - timedelta(days=days_ago)).timestamp()
    os.utime(path, (then, then))
    return path


def test_expired_exports_and_stray_export_files_go_through_the_processors_sweep(settings: Settings, today: date) -> None:
    access = settings.reports_dir / "access"
    expired, live = old_file(access / "access_request_1.json", 10), old_file(access / "access_request_2.json", 10)
    stray_old, stray_new = old_file(access / "access_request_3.json.partial", 10), old_file(access / "access_request_4.json", 1)
    query(
        settings,
        "INSERT INTO privacy_requests (email_hmac, request_type, status, processed_at, export_path, export_expires_at) VALUES"
        " ('h1', 'access', 'completed', now() - interval '10 days', %s, now() - interval '3 days'),"
        " ('h2', 'access', 'completed', now() - interval '10 days', %s, now() + interval '1 day')",
        (str(expired), str(live)),
    )
    with as_retention(settings) as conn:
        removal = retention.remove_access_exports(Run(conn, short(settings), today, dry_run=False))
    assert sorted(p.name for p in access.iterdir()) == ["access_request_2.json", "access_request_4.json"]
    assert not stray_old.exists() and stray_new.exists() and live.exists()
    pointers = query(settings, "SELECT email_hmac, export_path IS NULL FROM privacy_requests ORDER BY id")
    assert pointers == [("h1", True), ("h2", False)]
    deleted = query(settings, "SELECT actor, details->>'file_removed' FROM privacy_audit_log WHERE action = 'export_deleted'")
    assert deleted == [("retention", "true")]
    assert removal.summary() == (
        f"access exports: 2 files removed (cutoff {today - timedelta(days=3)}; 1 past their download period,"
        " 1 that no request points to)"
    )


def test_processed_requests_lose_their_residue_but_keep_status_dates_and_proof(settings: Settings, today: date) -> None:
    query(
        settings,
        "INSERT INTO privacy_requests (email, email_hmac, request_type, status, channel, outcome, corrections, secret_hash,"
        " requested_at, processed_at, export_expires_at, export_downloaded_at) VALUES"
        " (NULL, 'proof-old', 'rectification', 'completed', 'api', 'corrected: address', '{\"address\": \"x\"}', 'sh1',"
        "  now() - interval '60 days', now() - interval '50 days', now() - interval '43 days', now() - interval '44 days'),"
        " (NULL, 'proof-new', 'erasure', 'completed', 'sql', 'personal data erased', NULL, NULL,"
        "  now() - interval '12 days', now() - interval '10 days', NULL, NULL),"
        " ('someone@example.org', NULL, 'erasure', 'on_hold', 'sql', NULL, NULL, NULL, now() - interval '60 days', NULL, NULL,"
        "  NULL)",
    )
    [(old_id,), (new_id,), (held_id,)] = query(settings, "SELECT id FROM privacy_requests ORDER BY id")
    kept = "SELECT id, request_type, status, channel, requested_at, processed_at, due_at, original_due_at, email_hmac FROM privacy_requests ORDER BY id"  # noqa: E501
    before, trail = query(settings, kept), query(settings, "SELECT id, row_hash FROM privacy_audit_log ORDER BY id")
    query(settings, "INSERT INTO dpo_accounts (username, password_hash) VALUES ('dpo', 'x')")
    query(
        settings,
        "INSERT INTO dpo_sessions (token_hash, username, csrf_token, expires_at) VALUES"
        " ('gone', 'dpo', 'c', now() - interval '1 minute'), ('live', 'dpo', 'c', now() + interval '1 hour')",
    )
    query(
        settings,
        "INSERT INTO privacy_verifications (request_id, code_hash, expires_at) VALUES (%s, 'c1', now()), (%s, 'c2', now())",
        (old_id, held_id),
    )
    query(settings, "UPDATE privacy_requests SET status = 'unverified' WHERE id = %s", (held_id,))

    with as_retention(settings) as conn:
        job = Run(conn, short(settings), today, dry_run=False)
        removal = retention.remove_request_residue(job)
    processed = (datetime.now(UTC) - timedelta(days=50)).date()
    assert removal.summary() == (
        f"processed privacy requests: 1 request of {processed} cleared (cutoff {today - timedelta(days=20)};"
        " id, type, status, channel, dates and proof kept)"
    )
    residue = "SELECT id, email, outcome, corrections, secret_hash, export_path, export_expires_at, export_downloaded_at, residue_removed_at IS NOT NULL FROM privacy_requests ORDER BY id"  # noqa: E501
    rows = query(settings, residue)
    assert rows[0] == (old_id, None, None, None, None, None, None, None, True)
    assert rows[1][:3] == (new_id, None, "personal data erased") and rows[1][-1] is False
    assert rows[2][:2] == (held_id, "someone@example.org")  # still open: nothing of it goes
    assert query(settings, kept) == [*before[:2], (*before[2][:2], "unverified", *before[2][3:])]
    assert query(settings, "SELECT id, row_hash FROM privacy_audit_log ORDER BY id")[: len(trail)] == trail
    assert query(settings, "SELECT token_hash FROM dpo_sessions") == [("live",)]
    assert query(settings, "SELECT request_id FROM privacy_verifications") == [(held_id,)]
    assert [(r.kind, r.removed) for r in job.started] == [("privacy_requests", 1), ("dpo_sessions", 1), ("verification_codes", 1)]
    with as_retention(settings) as conn:  # what is cleared is not cleared again
        assert retention.remove_request_residue(Run(conn, short(settings), today, dry_run=False)).removed == 0


def test_report_files_before_the_cutoff_go_by_the_day_in_their_name(settings: Settings, today: date) -> None:
    cutoff = today - timedelta(days=15)
    old, kept = cutoff - timedelta(days=1), cutoff
    reports = settings.reports_dir
    names = [
        f"business_report_{old}.md", f"business_report_{old}_revenue.png", f"gdpr_audit_report_{old}.json",
        f"gdpr_audit_report_{old}.html.partial", f"business_report_{kept}.md", f"gdpr_audit_report_{kept}_requests.png",
        "notes.md", f"my_report_{old}.md",
    ]  # fmt: skip
    for name in names:
        old_file(reports / name, 0)
    old_file(reports / "access" / f"business_report_{old}.md", 0)  # not a report: the exports' folder is not searched
    with as_retention(settings) as conn:
        removal = retention.remove_report_files(Run(conn, short(settings), today, dry_run=False))
    assert sorted(p.name for p in reports.iterdir()) == sorted([*names[4:], "access"])
    assert removal.summary() == f"report files: 4 files of {old} removed (cutoff {cutoff})"


def test_each_kind_is_recorded_and_a_failure_records_what_went_before_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    cutoff = today - timedelta(days=10)  # raw events (SHORT)
    insert_events(settings, {cutoff - timedelta(days=1): 2})
    with as_retention(settings) as conn:
        apply_retention(conn, short(settings), ["raw_events", "reports"], today=today)

        def half_done(run: Run) -> Removal:
            removal = run.removal("dead_letters", 5)
            removal.add(7)
            raise OSError("disk gone")

        monkeypatch.setitem(retention.REMOVERS, "dead_letters", half_done)
        with pytest.raises(RetentionFailed, match="dead letters: disk gone; what was removed before is recorded"):
            apply_retention(conn, short(settings), ["dead_letters", "reports"], today=today)
    assert runs(settings) == [
        ("raw_events", cutoff, 2, False),
        ("reports", today - timedelta(days=15), 0, False),
        ("dead_letters", today - timedelta(days=5), 7, False),
    ]


# -- the command --------------------------------------------------------------------------------


def test_the_command_says_what_it_would_remove_then_removes_it(settings: Settings, today: date) -> None:
    day = today - timedelta(days=400)
    only_the_default_partition_before(settings, today - timedelta(days=395))
    insert_events(settings, {day: 3, today: 1})
    insert_metrics(settings, [day])
    dry = run_command("gdpr.retention", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == f"raw events: 3 rows of {day} would be removed (cutoff {today - timedelta(days=395)})"
    assert [line.split(":")[0] for line in lines] == [
        "raw events", "dead letters", "access exports", "processed privacy requests", "expired DPO sessions",
        "used verification codes", "report files",
    ]  # fmt: skip
    assert events_per_day(settings) == {day: 3, today: 1}

    result = run_command("gdpr.retention", "--only", "raw_events", "dead_letters")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"raw events: 3 rows of {day} removed (cutoff {today - timedelta(days=395)})",
        f"dead letters: nothing to remove (cutoff {today - timedelta(days=30)})",
    ]
    assert events_per_day(settings) == {today: 1}
    assert len(metrics(settings)) == 2
    assert [(kind, removed, dry_run) for kind, _c, removed, dry_run in runs(settings)][-2:] == [
        ("raw_events", 3, False),
        ("dead_letters", 0, False),
    ]


def test_the_command_has_help_and_refuses_a_retention_of_zero_days(settings: Settings) -> None:
    usage = run_command("gdpr.retention", "--help")
    assert usage.returncode == 0 and "--dry-run" in usage.stdout and "raw_events" in usage.stdout
    refused = run_command("gdpr.retention", env={"RETENTION_DAYS": "0"})
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: RETENTION_DAYS=0 must be at least 1"
    unknown = run_command("gdpr.retention", "--only", "metrics")
    assert unknown.returncode == 2 and "invalid choice: 'metrics'" in unknown.stderr
    assert runs(settings) == []


# -- Kafka -------------------------------------------------------------------------------------


def test_the_platform_creates_the_topic_with_kafka_retention_hours(settings: Settings) -> None:
    """The fixture created this test's topic with kafka.ensure_topic, as `make up` and compose's
    init create the events topic."""
    admin = kafka.ensure_reachable(settings.kafka)
    [future] = admin.describe_configs([ConfigResource("topic", settings.kafka.topic)]).values()
    assert future.result(timeout=10)["retention.ms"].value == str(168 * 3_600_000)
    assert settings.kafka.retention_hours == 168
