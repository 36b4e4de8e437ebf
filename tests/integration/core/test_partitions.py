"""events_raw partitioned by day (sql/021): a populated database converts in place, every event
finds a place (its day's partition, or the default one), a resent event is stored once although
the key must include the day, the sink keeps the week ahead created, and history can be given
its partitions first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from core import db
from core import partitions as partitions_module
from core.config import Settings
from core.events import Event
from tests.helpers import RAW, known_events, produce, produce_events, query, run_command, start_service, wait_caught_up
from tests.integration.core.databases import database_before

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
# Days no partition is ever created ahead for; each test that needs one without a partition has
# its own (partitions outlive the tables' reset between tests).
OLD_DAY = date(2003, 5, 4)
HISTORY_DAY = date(2002, 3, 3)
FORGOTTEN_DAY = date(2004, 2, 3)
RESENT_DAY = date(2001, 1, 2)


def partition_of(settings: Settings, event_id: str) -> list[str]:
    return [r[0] for r in query(settings, "SELECT tableoid::regclass::text FROM events_raw WHERE event_id = %s", (event_id,))]


def partition_of_day(settings: Settings, day: date) -> list[str]:
    rows = query(settings, "SELECT DISTINCT tableoid::regclass::text FROM events_raw WHERE event_date = %s", (day,))
    return [r[0] for r in rows]


def partitions(settings: Settings) -> set[str]:
    rows = query(settings, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events_raw'::regclass")
    return {r[0] for r in rows}


def privileges(settings: Settings, table: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The grants on ``table`` and on each of its columns, owner's excepted."""
    grants = query(
        settings,
        "SELECT coalesce(r.rolname, 'PUBLIC') || ':' || a.privilege_type FROM pg_class c"
        " CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
        (table,),
    )
    columns = query(
        settings,
        "SELECT att.attname, coalesce(r.rolname, 'PUBLIC') || ':' || a.privilege_type FROM pg_attribute att"
        " CROSS JOIN LATERAL aclexplode(att.attacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE att.attrelid = %s::regclass",
        (table,),
    )
    return {g for (g,) in grants}, {(c, g) for c, g in columns}


@pytest.fixture
def database_at_020(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A database of its own, migrated up to sql/020 (events_raw not yet partitioned)."""
    with database_before(settings, tmp_path, "021") as old:
        yield old


def test_a_populated_events_raw_is_partitioned_in_place_with_every_row_and_grant(
    settings: Settings, database_at_020: Settings
) -> None:
    old = database_at_020
    days = [OLD_DAY, TODAY - timedelta(days=400), TODAY - timedelta(days=1), TODAY]
    query(
        old,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, metadata,"
        " kafka_partition, kafka_offset)"
        " SELECT gen_random_uuid(), gen_random_uuid(), (ARRAY['page_view', 'add_to_cart', 'purchase'])[1 + n %% 3],"
        " d + make_interval(secs => n), d, CASE WHEN n %% 3 = 2 THEN n / 100.0 END, jsonb_build_object('n', n), 0, n"
        " FROM unnest(%s::date[]) AS d, generate_series(1, 250) AS n",
        (days,),
    )
    fingerprint = "SELECT count(*), md5(string_agg(e::text, '|' ORDER BY event_id)) FROM events_raw e"
    before = query(old, fingerprint)
    grants_before = privileges(old, "events_raw")
    assert grants_before[0] and grants_before[1]  # the roles of sql/003-020 hold grants to carry over

    assert db.migrate(old.database) == [p.name for p in db.migration_files() if p.name >= "021"]

    assert query(old, fingerprint) == before  # every row, unchanged, once
    assert query(old, "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'events_raw'::regclass") == [(1,)]
    placed = query(old, "SELECT tableoid::regclass::text, event_date, count(*) FROM events_raw GROUP BY 1, 2 ORDER BY 2")
    assert placed == [(f"events_raw_{d:%Y%m%d}", d, 250) for d in days]
    assert query(old, "SELECT count(*) FROM events_raw_default") == [(0,)]
    ahead = {f"events_raw_{TODAY + timedelta(days=n):%Y%m%d}" for n in range(8)}
    assert ahead <= partitions(old)
    # Every grant carried over; later migrations add some of their own (sql/034: the processor
    # re-keys event ids), the same as on a database migrated from the start.
    grants_after = privileges(old, "events_raw")
    assert grants_before[0] <= grants_after[0] and grants_before[1] <= grants_after[1]
    assert grants_after == privileges(settings, "events_raw")
    # VACUUM checks each partition: the GDPR processor may vacuum every one (PostgreSQL 17+).
    maintain = query(
        old,
        "SELECT bool_and(has_table_privilege('gdpr_processor', inhrelid, 'MAINTAIN')) FROM pg_inherits"
        " WHERE inhparent = 'events_raw'::regclass",
    )
    assert maintain == [(True,)]
    # The key has the day; the user index and the ingestion-time index are there for every partition.
    assert query(
        old,
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'events_raw'::regclass AND indisprimary",
    ) == [("CREATE UNIQUE INDEX events_raw_pkey ON ONLY public.events_raw USING btree (event_id, event_date)",)]
    [(indexes,)] = query(old, "SELECT count(*) FROM pg_indexes WHERE tablename = %s", (f"events_raw_{TODAY:%Y%m%d}",))
    assert indexes == 3


def test_a_resent_event_is_stored_once_in_its_days_partition_and_no_day_is_refused(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """A producer that resends: the same events two or three times, in one batch and in later
    ones, on today's partition, on one created ahead (tomorrow, within the accepted skew), on a
    late day's and on a day that has no partition (the default one takes it)."""
    tomorrow = datetime.now(UTC) + timedelta(hours=23)
    late = TODAY - timedelta(days=30)
    events = [
        *known_events(3, seed=5, days=[TODAY]),
        *known_events(2, seed=6, days=[OLD_DAY]),
        *known_events(1, seed=4, days=[late]),
        *known_events(1, seed=7, days=[tomorrow.date()]),
    ]
    events[-1] = msgspec.structs.replace(events[-1], event_timestamp=tomorrow)
    produce_events(settings, events + events)
    raw = start_service(RAW, group, tmp_path)
    try:
        wait_caught_up(settings, group)
        produce_events(settings, events[:2] + events[3:])  # again, after the first copies are stored
        wait_caught_up(settings, group)
    finally:
        assert raw.stop() == 0, raw.output()
    stored = query(settings, "SELECT event_id::text, count(*) FROM events_raw GROUP BY 1")
    assert sorted(stored) == sorted((e.event_id, 1) for e in events)
    assert partition_of(settings, events[0].event_id) == [f"events_raw_{TODAY:%Y%m%d}"]
    assert partition_of(settings, events[3].event_id) == ["events_raw_default"]
    assert partition_of(settings, events[-1].event_id) == [f"events_raw_{tomorrow.date():%Y%m%d}"]
    # A late day within the retention gets its partition from the sink; one older than the
    # retention (OLD_DAY) waits in the default partition for retention to delete it.
    assert partition_of(settings, events[5].event_id) == [f"events_raw_{late:%Y%m%d}"]
    assert query(settings, "SELECT count(*) FROM dead_letter_events") == [(0,)]


def test_the_sink_creates_the_partitions_of_the_week_ahead(settings: Settings, group: str, tmp_path: Path) -> None:
    last = TODAY + timedelta(days=7)
    name = f"events_raw_{last:%Y%m%d}"
    if name in partitions(settings):
        query(settings, f"ALTER TABLE events_raw DETACH PARTITION {name}")
        query(settings, f"DROP TABLE {name}")
    produce_events(settings, known_events(1, seed=8, days=[TODAY]))
    raw = start_service(RAW, group, tmp_path)
    try:
        wait_caught_up(settings, group)
    finally:
        assert raw.stop() == 0, raw.output()
    assert name in partitions(settings)


def test_history_gets_its_partitions_first_and_rows_waiting_in_the_default_move_in(settings: Settings) -> None:
    event = known_events(1, seed=9, days=[HISTORY_DAY])[0]
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
        " VALUES (%s, %s, %s, %s, %s, 0, 1)",
        (event.event_id, event.user_id, event.event_type, event.event_timestamp, event.event_date),
    )
    assert partition_of(settings, event.event_id) == ["events_raw_default"]

    done = run_command("core.partitions", "--from", str(HISTORY_DAY - timedelta(days=1)), "--to", str(HISTORY_DAY))
    assert done.returncode == 0, done.stderr
    assert f"from {HISTORY_DAY - timedelta(days=1)} to {HISTORY_DAY}" in done.stdout
    assert partition_of(settings, event.event_id) == [f"events_raw_{HISTORY_DAY:%Y%m%d}"]
    again = run_command("core.partitions", "--from", str(HISTORY_DAY), "--to", str(HISTORY_DAY))
    assert again.returncode == 0 and ": 0 created" in again.stdout

    too_far = run_command("core.partitions", "--from", str(TODAY), "--to", str(TODAY + timedelta(days=40)))
    assert too_far.returncode == 2
    assert too_far.stderr.startswith("error: the partitions were not created") and "Traceback" not in too_far.stderr


def test_retention_drops_old_days_and_deletes_the_old_rows_of_the_default_partition(settings: Settings) -> None:
    old_with_partition = TODAY - timedelta(days=500)
    run_command("core.partitions", "--from", str(old_with_partition), "--to", str(old_with_partition))
    events: list[Event] = [
        *known_events(2, seed=10, days=[old_with_partition]),
        *known_events(3, seed=11, days=[FORGOTTEN_DAY]),  # the default partition
        *known_events(1, seed=12, days=[TODAY]),
    ]
    for i, e in enumerate(events):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
            " VALUES (%s, %s, %s, %s, %s, 0, %s)",
            (e.event_id, e.user_id, e.event_type, e.event_timestamp, e.event_date, i),
        )
    assert partition_of(settings, events[2].event_id) == ["events_raw_default"]
    env = {"RETENTION_DAYS": "100"}
    dry = run_command("gdpr.retention", "--only", "raw_events", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert query(settings, "SELECT removed FROM retention_runs WHERE kind = 'raw_events' AND dry_run") == [(5,)]
    assert query(settings, "SELECT count(*) FROM events_raw") == [(6,)]

    done = run_command("gdpr.retention", "--only", "raw_events", env=env)
    assert done.returncode == 0, done.stderr
    assert query(settings, "SELECT event_id::text FROM events_raw") == [(events[-1].event_id,)]
    assert f"events_raw_{old_with_partition:%Y%m%d}" not in partitions(settings)
    assert query(settings, "SELECT removed FROM retention_runs WHERE kind = 'raw_events' AND NOT dry_run") == [(5,)]


def test_a_duplicate_in_the_default_partition_is_ignored_too(settings: Settings, group: str, tmp_path: Path) -> None:
    """The default partition has the same key: a resent event for a day without a partition is
    stored once, and stays once when its day's partition is created afterwards."""
    event = known_events(1, seed=13, days=[RESENT_DAY])[0]
    produce(settings, [(event.key, event.to_json())] * 3)
    raw = start_service(RAW, group, tmp_path)
    try:
        wait_caught_up(settings, group)
        assert run_command("core.partitions", "--from", str(RESENT_DAY), "--to", str(RESENT_DAY)).returncode == 0
        produce_events(settings, [event])
        wait_caught_up(settings, group)
    finally:
        assert raw.stop() == 0, raw.output()
    assert partition_of(settings, event.event_id) == [f"events_raw_{RESENT_DAY:%Y%m%d}"]


def test_the_oldest_day_held_is_found_day_by_day_and_in_the_default_partition(settings: Settings) -> None:
    """The audit report's oldest event day: the partitions are tried oldest first, empty ones
    skipped, and a row of an older day waiting in the default partition still counts."""
    empty, full, unpartitioned = date(2005, 6, 7), date(2005, 6, 9), date(2005, 6, 1)

    def oldest() -> date | None:
        with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
            return partitions_module.oldest_event_day(cur)

    def store(day: date) -> None:
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 'page_view', %s, %s, 0, 0)",
            (f"{day.isoformat()}T12:00:00+00:00", day),
        )

    assert oldest() is None
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        partitions_module.create_partitions(cur, empty, full)
    store(TODAY)
    store(full)
    assert oldest() == full  # the empty 7th and 8th are passed over
    store(unpartitioned)
    assert partition_of_day(settings, unpartitioned) == ["events_raw_default"]
    assert oldest() == unpartitioned


def test_a_batch_creates_few_partitions_of_past_days_and_the_nightly_run_the_rest(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """One request spread over many past days once made the sink create a partition for each, in
    one transaction: a batch creates at most PARTITIONS_PER_BATCH (the latest days), the other
    days' events wait in the default partition, and the nightly retention run moves them into
    partitions of their own."""
    days = [TODAY - timedelta(days=n) for n in range(200, 240)]  # days no other test partitions
    events = known_events(len(days) * 2, seed=13, days=days)
    before = partitions(settings)
    produce_events(settings, events)
    raw = start_service(RAW, group, tmp_path, {"PARTITIONS_PER_BATCH": "3", "SINK_BATCH_SIZE": "5000"})
    try:
        wait_caught_up(settings, group)
    finally:
        assert raw.stop() == 0, raw.output()
    created = {name for name in partitions(settings) - before if name != f"events_raw_{TODAY + timedelta(days=7):%Y%m%d}"}
    assert created <= {f"events_raw_{day:%Y%m%d}" for day in days}
    assert 3 <= len(created) <= 3 * int(query(settings, "SELECT count(*) FROM consumer_batches")[0][0])
    assert len(created) < len(days)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(len(events),)]
    waiting = query(settings, "SELECT count(DISTINCT event_date) FROM events_raw_default WHERE event_date = ANY(%s)", (days,))
    assert waiting == [(len(days) - len(created),)]

    nightly = run_command("gdpr.retention", "--only", "raw_events")
    assert nightly.returncode == 0, nightly.stderr
    assert {f"events_raw_{day:%Y%m%d}" for day in days} <= partitions(settings)
    assert query(settings, "SELECT count(*) FROM events_raw_default WHERE event_date = ANY(%s)", (days,)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM events_raw") == [(len(events),)]
    for day in days[:3]:
        assert partition_of_day(settings, day) == [f"events_raw_{day:%Y%m%d}"]
