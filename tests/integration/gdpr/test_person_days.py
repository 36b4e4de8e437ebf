"""The lists of the days each person's events are on (gdpr.person_days, sql/027): built for closed
days, kept exact against late events by the trigger's notes, read by the erasure, rid of the days
retention dropped by the next build."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from core import cli, db
from core.config import Settings
from gdpr import person_days
from gdpr.processing import process_pending
from tests.helpers import query, run_command, wait_until
from tests.integration.gdpr.test_rights import add_person, request, status

pytestmark = pytest.mark.integration

TODAY = cli.today_utc()
DAYS = [TODAY - timedelta(days=n) for n in (5, 4, 3)]


INSERT_EVENT = (
    "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
    " VALUES (gen_random_uuid(), %s, 'page_view', %s::date + time '12:00', %s, 0, %s)"
)


def add_event(settings: Settings, user_id: str, day: date, offset: int) -> None:
    query(settings, INSERT_EVENT, (user_id, day, day, offset))


def build(settings: Settings, chunk: int = person_days.MERGE_CHUNK) -> tuple[list[date], int]:
    with db.connection(settings.database, application_name="test", role=db.GDPR_ROLE) as conn:
        return person_days.build(conn, settings.database, chunk=chunk)


def platform_locks_of(settings: Settings, application_name: str) -> int:
    """The coordination locks (sql/030) held by the connections of ``application_name``, its
    build lock's own connection included."""
    [(count,)] = query(
        settings,
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname LIKE 'platform\\_lock\\_%%' AND a.application_name IN (%s, 'gdpr_person_days-lock')",
        (application_name,),
    )
    return int(count)


def coverage(settings: Settings) -> person_days.Coverage:
    with db.connection(settings.database, application_name="test", role=db.GDPR_ROLE) as conn, conn.cursor() as cur:
        return person_days.coverage(cur)


def listed(settings: Settings, user_id: str) -> list[date] | None:
    rows = query(settings, "SELECT days FROM person_days WHERE user_id = %s", (user_id,))
    return rows[0][0] if rows else None


def events_of(settings: Settings, user_id: str) -> int:
    [(count,)] = query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (user_id,))
    return int(count)


@pytest.fixture
def history(settings: Settings) -> Settings:
    """Partitions for the days used, as the sink and the operators' loads create them."""
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (DAYS[0], TODAY + timedelta(days=1)))
    return settings


def test_the_build_lists_each_persons_closed_days_and_the_erasure_reads_them(history: Settings) -> None:
    settings = history
    ada = add_person(settings, 21, "ada@example.com")
    bob = add_person(settings, 22, "bob@example.com")
    for n, day in enumerate(DAYS):
        add_event(settings, ada, day, n)
    add_event(settings, bob, DAYS[1], 10)
    add_event(settings, ada, TODAY, 11)  # today is open: never listed, always searched

    built, people = build(settings)
    assert set(DAYS) <= set(built) and TODAY not in built and people == 2
    assert listed(settings, ada) == DAYS and listed(settings, bob) == [DAYS[1]]
    days = coverage(settings)
    assert set(DAYS) <= days.covered and TODAY in days.searched and not set(DAYS) & set(days.searched)
    assert build(settings) == ([], 0)  # nothing changed since

    erasure = request(settings, "ada@example.com")
    process_pending(settings)
    assert status(settings, erasure) == "completed"
    # The listed days' events were found through the list alone (those days were not searched).
    assert events_of(settings, ada) == 0
    assert listed(settings, ada) is None
    assert events_of(settings, bob) == 1 and listed(settings, bob) == [DAYS[1]]


def test_a_late_event_on_a_built_day_is_noted_and_that_day_is_searched(history: Settings) -> None:
    settings = history
    ada = add_person(settings, 23, "late@example.com")
    add_event(settings, ada, DAYS[0], 1)
    build(settings)
    assert listed(settings, ada) == [DAYS[0]]

    add_event(settings, ada, DAYS[2], 2)  # a late event of a closed, built day, not in ada's list
    assert query(settings, "SELECT event_date FROM person_days_changes") == [(DAYS[2],)]
    days = coverage(settings)
    assert DAYS[2] in days.searched and DAYS[2] not in days.covered and DAYS[0] in days.covered

    request(settings, "late@example.com")
    process_pending(settings)
    assert events_of(settings, ada) == 0


def test_a_rebuild_takes_the_late_days_in_and_clears_their_notes(history: Settings) -> None:
    settings = history
    ada = add_person(settings, 24, "rebuild@example.com")
    add_event(settings, ada, DAYS[0], 1)
    build(settings)
    add_event(settings, ada, DAYS[2], 2)
    with db.connection(settings.database, application_name="test") as conn, conn.cursor() as cur:
        assert person_days.days_to_build(cur, datetime.now(UTC)) == [DAYS[2]]
    built, people = build(settings)
    assert built == [DAYS[2]] and people == 1
    assert listed(settings, ada) == [DAYS[0], DAYS[2]]
    assert query(settings, "SELECT count(*) FROM person_days_changes") == [(0,)]


def test_events_of_today_are_not_noted(history: Settings) -> None:
    add_event(history, add_person(history, 25, "today@example.com"), TODAY, 1)
    assert query(history, "SELECT count(*) FROM person_days_changes") == [(0,)]


def test_a_day_is_built_only_once_it_has_been_over_a_while() -> None:
    midnight = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    assert person_days.closed_before(midnight + timedelta(minutes=5)) == TODAY - timedelta(days=1)
    assert person_days.closed_before(midnight + timedelta(minutes=15)) == TODAY


def test_the_next_build_takes_the_days_retention_dropped_out_of_the_lists(history: Settings) -> None:
    settings = history
    ada = add_person(settings, 26, "keep@example.com")
    bob = add_person(settings, 27, "old@example.com")
    for n, day in enumerate(DAYS):
        add_event(settings, ada, day, n)
    add_event(settings, bob, DAYS[0], 3)
    build(settings)
    keep = (TODAY - DAYS[2]).days  # DAYS[0] and DAYS[1] go
    env = {"RETENTION_DAYS": str(keep), "KAFKA_RETENTION_HOURS": "24"}
    result = run_command("gdpr.retention", "--only", "raw_events", env=env)
    assert result.returncode == 0, result.stderr
    assert listed(settings, ada) == DAYS  # until the next build
    build(settings)
    assert listed(settings, ada) == [DAYS[2]]
    assert listed(settings, bob) is None
    assert query(settings, "SELECT count(*) FROM person_days_built WHERE event_date < %s", (DAYS[2],)) == [(0,)]


def test_the_command_builds_and_says_what_it_did(history: Settings) -> None:
    add_event(history, add_person(history, 28, "cli@example.com"), DAYS[0], 1)
    first = run_command("gdpr.person_days")
    assert first.returncode == 0, first.stderr
    assert "person days built for" in first.stdout and "1 people's lists changed" in first.stdout
    again = run_command("gdpr.person_days")
    assert again.returncode == 0 and "every closed day is built" in again.stdout
    helped = run_command("gdpr.person_days", "--help")
    assert helped.returncode == 0 and "erasure" in helped.stdout


def test_a_build_merged_one_person_at_a_time_lists_the_same_days(history: Settings) -> None:
    settings = history
    ada = add_person(settings, 29, "steps@example.com")
    bob = add_person(settings, 30, "steps.two@example.com")
    for n, day in enumerate(DAYS):
        add_event(settings, ada, day, n)
    add_event(settings, bob, DAYS[2], 5)
    built, people = build(settings, chunk=1)  # every person merged in a transaction of their own
    assert set(DAYS) <= set(built) and people == 2
    assert listed(settings, ada) == DAYS and listed(settings, bob) == [DAYS[2]]
    assert set(DAYS) <= coverage(settings).covered
    add_event(settings, ada, DAYS[0], 6)  # late, on a day ada's list has: merged, not duplicated
    add_event(settings, bob, DAYS[0], 7)  # late, before bob's only day: merged in order
    assert build(settings, chunk=1) == ([DAYS[0]], 1)
    assert listed(settings, ada) == DAYS and listed(settings, bob) == [DAYS[0], DAYS[2]]


def test_a_late_event_written_while_a_build_merges_keeps_its_day_searched(history: Settings) -> None:
    """The build deletes only the notes its read saw: a late event on a day being rebuilt,
    written (by the raw sink's own login) and committed while the build merges, after its read,
    leaves its note, so that day is still searched in full and built again next time."""
    settings = history
    ada = add_person(settings, 31, "racing@example.com")
    add_event(settings, ada, DAYS[0], 1)
    build(settings)
    add_event(settings, ada, DAYS[1], 2)  # late: DAYS[1] is to be built again
    original = person_days._merge_chunk

    def merge(cur: db.Cursor, after: str | None, last: str) -> int:
        with (
            db.connection(settings.database, application_name="test-sink", role=db.INGEST_ROLE) as writer,
            writer,
            writer.cursor() as other,
        ):
            other.execute(INSERT_EVENT, (ada, DAYS[1], DAYS[1], 3))
        return original(cur, after, last)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(person_days, "_merge_chunk", merge)
        assert build(settings)[0] == [DAYS[1]]
    notes = query(settings, "SELECT event_date FROM person_days_changes")
    assert notes == [(DAYS[1],)]  # the second write's note, which the read did not see
    assert DAYS[1] in coverage(settings).searched
    assert build(settings) == ([DAYS[1]], 0)  # ada's list already has that day
    assert query(settings, "SELECT count(*) FROM person_days_changes") == [(0,)]


def test_a_failed_build_releases_its_locks(history: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = history
    add_event(settings, add_person(settings, 32, "fails@example.com"), DAYS[0], 1)

    def fail(cur: db.Cursor, after: str | None, last: str) -> int:
        cur.execute("SELECT 1 / 0")
        return 0

    monkeypatch.setattr(person_days, "_merge_chunk", fail)
    with db.connection(settings.database, application_name="test-failing-build", role=db.GDPR_ROLE) as conn:
        with pytest.raises(psycopg2.errors.DivisionByZero):
            person_days.build(conn, settings.database)
        # The error above is the build's own; both its locks are gone and the connection is usable.
        assert platform_locks_of(settings, "test-failing-build") == 0
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM person_days_built")
            assert cur.fetchone() == (0,)
    monkeypatch.undo()
    assert DAYS[0] in build(settings)[0]


def test_an_erasure_waits_for_one_merged_chunk_not_the_whole_build(history: Settings) -> None:
    """Each chunk of the merge takes the erasure lock and lets it go: an erasure that asks for it
    during the first chunk runs before the second; the person it erased, read before it ran,
    gets no list back from the later chunks."""
    settings = history
    people = sorted(add_person(settings, 40 + n, f"between{n}@example.com") for n in range(3))
    for n, person in enumerate(people):
        add_event(settings, person, DAYS[n], n)
    erased = people[-1]  # merged last, after the erasure
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (erased,))
    erasure = request(settings, email)
    chunks: list[str] = []
    seen: list[str] = []
    original = person_days._merge_chunk
    worker = threading.Thread(target=process_pending, args=(settings,))

    def merge(cur: db.Cursor, after: str | None, last: str) -> int:
        chunks.append(last)
        seen.append(status(settings, erasure))
        if len(chunks) == 1:
            worker.start()
            wait_until(
                lambda: (
                    query(
                        settings,
                        "SELECT count(*) FROM pg_locks WHERE relation = 'platform_lock_erasure'::regclass AND NOT granted",
                    )
                    == [(1,)]
                ),
                timeout=30,
                what="the erasure to wait for the lock",
            )
        return original(cur, after, last)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(person_days, "_merge_chunk", merge)
        build(settings, chunk=1)
    worker.join(timeout=60)
    assert chunks == people
    assert seen == ["pending", "completed", "completed"]  # done between the first chunk and the second
    assert events_of(settings, erased) == 0 and listed(settings, erased) is None
    assert listed(settings, people[0]) == [DAYS[0]] and listed(settings, people[1]) == [DAYS[1]]


def test_an_access_export_reads_the_listed_days_and_every_day_not_covered(history: Settings) -> None:
    """The export finds the person's events through their list, plus the days no list covers:
    today, and a built day that received a late event (not in the list yet)."""
    settings = history
    ada = add_person(settings, 34, "export@example.com")
    add_event(settings, ada, DAYS[0], 1)
    add_event(settings, ada, DAYS[1], 2)
    build(settings)
    add_event(settings, ada, DAYS[2], 3)  # late, on a built day: noted, not listed
    add_event(settings, ada, TODAY, 4)
    assert listed(settings, ada) == [DAYS[0], DAYS[1]]
    access = request(settings, "export@example.com", "access")
    process_pending(settings)
    assert status(settings, access) == "completed"
    [(path,)] = query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (access,))
    exported = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    days = sorted(date.fromisoformat(e["event_timestamp"][:10]) for e in exported["events"])
    assert days == [DAYS[0], DAYS[1], DAYS[2], TODAY]
