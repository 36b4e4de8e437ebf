"""Consumer progress: the one owner of ``consumer_offsets`` (and its telemetry tables).

PostgreSQL, not Kafka, records how far each consumer group has got: the next offset of every
partition, written in the same transaction as the rows it covers. Every reader and writer of
that record goes through this module: the sink's checkpoint (lock, fence, advance), the status
command and the live dashboard (lag, rate, health), the reconciliation ("are both groups at the
same offsets"), the embedded stack (forget a topic the broker lost) and the tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg2.extras import execute_values

from core import db, kafka
from core.config import Settings

Cursor = db.Cursor
# consumer_batches feeds the status command's events/s; an hour of history is plenty.
BATCH_HISTORY = "1 hour"
# A heartbeat older than this belongs to an instance that is gone (stopped or killed).
INSTANCE_STALE_S = 60


def stored(cur: Cursor, group: str, topic: str, partitions: Iterable[int] | None = None) -> dict[int, int]:
    """Next offset per partition as recorded for ``group`` (absent: never consumed)."""
    if partitions is None:
        cur.execute(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s", (group, topic)
        )
    else:
        cur.execute(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)",
            (group, topic, list(partitions)),
        )
    return {int(p): int(offset) for p, offset in cur.fetchall()}


def lock(cur: Cursor, group: str, topic: str, first: Mapping[int, int]) -> dict[int, int]:
    """Lock the stored offsets of the partitions in ``first`` for this transaction and return
    them; a partition never seen before is recorded at its first offset in the batch.

    The row lock is the fence: an instance that still holds a revoked partition waits here and
    then sees what the new owner stored, so it can drop what is already done. The INSERT already
    waits for another writer of the same row to finish (ON CONFLICT), but takes no lock on a row
    that exists; FOR UPDATE then holds every row until this transaction ends, so the next writer
    waits for this one. tests/integration/consumers/test_stale_writer.py forces a stale writer.
    """
    partitions = sorted(first)
    execute_values(
        cur,
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES %s ON CONFLICT DO NOTHING",
        [(group, topic, p, first[p]) for p in partitions],
    )
    cur.execute(
        "SELECT partition, next_offset FROM consumer_offsets"
        " WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s) ORDER BY partition FOR UPDATE",
        (group, topic, partitions),
    )
    return {int(p): int(offset) for p, offset in cur.fetchall()}


def advance(cur: Cursor, group: str, topic: str, next_offsets: Mapping[int, int]) -> None:
    """Record the next offset of each partition (rows locked by ``lock`` in this transaction)."""
    if not next_offsets:
        return
    execute_values(
        cur,
        "UPDATE consumer_offsets AS c SET next_offset = v.next_offset, updated_at = now()"
        " FROM (VALUES %s) AS v (consumer_group, topic, partition, next_offset)"
        " WHERE c.consumer_group = v.consumer_group AND c.topic = v.topic AND c.partition = v.partition",
        [(group, topic, p, offset) for p, offset in sorted(next_offsets.items())],
    )


def record_batch(
    cur: Cursor,
    group: str,
    topic: str,
    events: int,
    dead_letters: int,
    *,
    prune: bool = False,
    produced: tuple[int, int] | None = None,
) -> None:
    """One row of batch telemetry (the status command's events/s and freshness): ``events`` valid
    events handled (stored, or dropped for lack of consent), ``dead_letters`` invalid ones,
    ``produced`` the Kafka timestamps (ms) of the oldest and newest message (left out when
    PostgreSQL could not hold one); ``prune`` drops old rows. Stamped with the clock, not the
    transaction's start: this is the batch's last statement."""
    oldest, newest = (_instant(produced[0]), _instant(produced[1])) if produced is not None else (None, None)
    if oldest is None or newest is None:
        oldest = newest = None
    cur.execute(
        "INSERT INTO consumer_batches (consumer_group, topic, events, dead_letters, committed_at, oldest_event_at,"
        " newest_event_at) VALUES (%s, %s, %s, %s, clock_timestamp(), %s, %s)",
        (group, topic, events, dead_letters, oldest, newest),
    )
    if prune:
        cur.execute(
            "DELETE FROM consumer_batches WHERE consumer_group = %s AND committed_at < now() - %s::interval",
            (group, BATCH_HISTORY),
        )


def _instant(ms: int) -> datetime | None:
    """A Kafka timestamp as a UTC datetime, None when it is not one Python can hold (years 1 to
    9999, all within PostgreSQL's range): a producer sets any 64-bit number it likes, and one
    PostgreSQL refuses (22008) would fail the batch's commit on every restart."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def heartbeat(cur: Cursor, group: str, topic: str, instance: str, *, broker_ok: bool) -> None:
    """Say that ``instance`` is alive and whether it reaches its broker (kept since when not)."""
    cur.execute(
        "INSERT INTO consumer_instances AS i (consumer_group, topic, instance, broker_ok, broker_lost_since)"
        " VALUES (%s, %s, %s, %s, CASE WHEN %s THEN NULL ELSE now() END)"
        " ON CONFLICT (consumer_group, topic, instance) DO UPDATE SET broker_ok = EXCLUDED.broker_ok, seen_at = now(),"
        " broker_lost_since = CASE WHEN EXCLUDED.broker_ok THEN NULL ELSE coalesce(i.broker_lost_since, now()) END",
        (group, topic, instance, broker_ok, broker_ok),
    )


def retire(cur: Cursor, group: str, topic: str, instance: str) -> None:
    """A cleanly stopped instance leaves no heartbeat behind."""
    cur.execute(
        "DELETE FROM consumer_instances WHERE consumer_group = %s AND topic = %s AND instance = %s", (group, topic, instance)
    )


def forget_topic(cur: Cursor, topic: str) -> int:
    """Drop every group's stored offsets of ``topic`` (its log is gone); return how many."""
    cur.execute("DELETE FROM consumer_offsets WHERE topic = %s", (topic,))
    return int(cur.rowcount)


def groups_in_step(cur: Cursor, topic: str, groups: tuple[str, str]) -> bool:
    """Lock both groups' stored offsets (their commits wait) and say whether they are equal."""
    cur.execute(
        "SELECT consumer_group, partition, next_offset FROM consumer_offsets"
        " WHERE topic = %s AND consumer_group = ANY(%s) ORDER BY consumer_group, partition FOR UPDATE",
        (topic, list(groups)),
    )
    offsets: dict[str, dict[int, int]] = {g: {} for g in groups}
    for group, partition, offset in cur.fetchall():
        offsets[group][int(partition)] = int(offset)
    return offsets[groups[0]] == offsets[groups[1]]


def total_stored(cur: Cursor, group: str) -> int:
    """Sum of the next offsets of every partition of ``group``: messages it has finished."""
    cur.execute("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s", (group,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class GroupProgress:
    """What PostgreSQL knows of one group: offsets, recent rate, dead letters, liveness."""

    group: str
    offsets: dict[int, int]
    last_commit: datetime | None
    events_last_window: int
    dead_letters: int | None  # None: not counted (overview(..., count_dead_letters=False))
    instances: int
    broker_lost_since: datetime | None
    # Seconds from an event's production (its Kafka timestamp) to the commit that made it visible:
    # the newest and the oldest event of the last batch, and the oldest of any batch in the window.
    freshness: Freshness | None = None


@dataclass(frozen=True)
class Freshness:
    """How long after being produced events became visible, in seconds."""

    last_best: float
    last_worst: float
    window_worst: float


def overview(cur: Cursor, topic: str, window_s: int, *, count_dead_letters: bool = True) -> dict[str, GroupProgress]:
    """Every group that stored offsets of ``topic`` or has a live instance on it; without
    ``count_dead_letters`` their dead letters are not counted (a login that may not read which
    group wrote a dead letter: the dashboard's)."""
    cur.execute(
        "SELECT consumer_group, partition, next_offset, updated_at FROM consumer_offsets WHERE topic = %s"
        " ORDER BY consumer_group, partition",
        (topic,),
    )
    offsets: dict[str, dict[int, int]] = {}
    last_commit: dict[str, datetime] = {}
    for group, partition, offset, updated_at in cur.fetchall():
        offsets.setdefault(group, {})[int(partition)] = int(offset)
        last_commit[group] = max(last_commit.get(group, updated_at), updated_at)
    cur.execute(
        "SELECT consumer_group, coalesce(sum(events), 0) FROM consumer_batches"
        " WHERE topic = %s AND committed_at > now() - make_interval(secs => %s) GROUP BY consumer_group",
        (topic, window_s),
    )
    recent = {group: int(events) for group, events in cur.fetchall()}
    dead: dict[str, int] | None = None
    if count_dead_letters:
        cur.execute("SELECT consumer_group, count(*) FROM dead_letter_events WHERE topic = %s GROUP BY consumer_group", (topic,))
        dead = {group: int(n) for group, n in cur.fetchall()}
    cur.execute(
        "SELECT consumer_group, count(*), min(broker_lost_since) FROM consumer_instances"
        " WHERE topic = %s AND seen_at > now() - make_interval(secs => %s) GROUP BY consumer_group",
        (topic, INSTANCE_STALE_S),
    )
    live = {group: (int(n), lost) for group, n, lost in cur.fetchall()}
    cur.execute(
        "SELECT DISTINCT ON (consumer_group) consumer_group,"
        " extract(epoch FROM committed_at - newest_event_at)::float8, extract(epoch FROM committed_at - oldest_event_at)::float8,"
        " max(extract(epoch FROM committed_at - oldest_event_at)::float8) OVER (PARTITION BY consumer_group)"
        " FROM consumer_batches WHERE topic = %s AND oldest_event_at IS NOT NULL"
        " AND committed_at > now() - make_interval(secs => %s) ORDER BY consumer_group, committed_at DESC",
        (topic, window_s),
    )
    fresh = {group: Freshness(max(best, 0.0), max(worst, 0.0), max(window, 0.0)) for group, best, worst, window in cur.fetchall()}
    return {
        name: GroupProgress(
            group=name,
            offsets=offsets.get(name, {}),
            last_commit=last_commit.get(name),
            events_last_window=recent.get(name, 0),
            dead_letters=None if dead is None else dead.get(name, 0),
            instances=live.get(name, (0, None))[0],
            broker_lost_since=live.get(name, (0, None))[1],
            freshness=fresh.get(name),
        )
        for name in sorted(set(offsets) | set(live))
    }


def events_per_minute(cur: Cursor, topic: str, minutes: int) -> dict[str, list[int]]:
    """Valid events each group handled in each of the last ``minutes`` minutes, oldest first: the
    last entry is the 60 s before now (the database's clock), the one before it the 60 s before
    those, and so on. ``minutes`` is at most an hour: older batches are pruned (BATCH_HISTORY)."""
    cur.execute(
        "SELECT consumer_group, floor(extract(epoch FROM now() - committed_at) / 60)::int, sum(events)"
        " FROM consumer_batches WHERE topic = %s AND committed_at > now() - make_interval(mins => %s)"
        " GROUP BY 1, 2",
        (topic, minutes),
    )
    series: dict[str, list[int]] = {}
    for group, ago, events in cur.fetchall():
        # A batch stamped after now() (this transaction's start) counts in the latest minute.
        series.setdefault(group, [0] * minutes)[minutes - 1 - min(max(ago, 0), minutes - 1)] += int(events)
    return series


@dataclass(frozen=True)
class GroupStatus:
    """One group as the status command and the dashboard show it: PostgreSQL's progress beside
    Kafka's end offsets."""

    group: str
    lag: dict[int, int] | None  # None: the broker could not be asked for its end offsets
    events_per_s: float
    dead_letters: int | None
    last_commit: datetime | None
    instances: int = 0
    broker_lost_since: datetime | None = None
    freshness: Freshness | None = None

    @property
    def total_lag(self) -> int | None:
        return None if self.lag is None else sum(self.lag.values())


def statuses(
    known: Mapping[str, GroupProgress], ends: Mapping[int, int] | None, window_s: int, groups: Iterable[str] | None = None
) -> list[GroupStatus]:
    """Each of ``groups`` (default: every group in ``known``, by name): its lag per partition (the
    end of the partition, ``ends``, minus the offset it stored; None when the broker did not say),
    its events/s over ``window_s`` and what ``overview`` found of it."""
    result = []
    for name in sorted(known) if groups is None else groups:
        found = known.get(name)
        offsets = found.offsets if found else {}
        result.append(
            GroupStatus(
                group=name,
                lag=None if ends is None else {p: end - offsets.get(p, 0) for p, end in sorted(ends.items())},
                events_per_s=(found.events_last_window if found else 0) / window_s,
                dead_letters=found.dead_letters if found else 0,
                last_commit=found.last_commit if found else None,
                instances=found.instances if found else 0,
                broker_lost_since=found.broker_lost_since if found else None,
                freshness=found.freshness if found else None,
            )
        )
    return result


def lag(settings: Settings, group_id: str, topic: str | None = None) -> dict[int, int]:
    """Messages per partition not yet stored by ``group_id``: end offset minus stored offset."""
    name = topic or settings.kafka.topic
    ends = kafka.end_offsets(settings.kafka, name)
    with db.connection(settings.database, application_name="lag", role=db.MONITOR_ROLE) as conn, conn, conn.cursor() as cur:
        done = stored(cur, group_id, name)
    return {p: end - done.get(p, 0) for p, end in ends.items()}
