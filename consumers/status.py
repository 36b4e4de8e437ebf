"""Consumer status: per consumer group, lag per partition, events/s over the last minute, dead letters.

Lag is the end of each partition in Kafka minus the offset the group stored in PostgreSQL (the
only record of progress: nothing is committed to Kafka).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime

from core import cli, db, kafka
from core.config import Settings

RATE_WINDOW_S = 60


@dataclass(frozen=True)
class GroupStatus:
    group: str
    lag: dict[int, int]
    events_per_s: float
    dead_letters: int
    last_commit: datetime | None

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def collect(settings: Settings, groups: list[str] | None = None) -> list[GroupStatus]:
    """Status of ``groups`` (default: every group that stored offsets of the topic)."""
    topic = settings.kafka.topic
    ends = kafka.end_offsets(settings.kafka, topic)
    with db.connection(settings.database, application_name="status") as conn, conn, conn.cursor() as cur:
        cur.execute(
            "SELECT consumer_group, partition, next_offset, updated_at FROM consumer_offsets WHERE topic = %s"
            " ORDER BY consumer_group, partition",
            (topic,),
        )
        stored: dict[str, dict[int, int]] = {}
        last_commit: dict[str, datetime] = {}
        for group, partition, offset, updated_at in cur.fetchall():
            stored.setdefault(group, {})[partition] = offset
            last_commit[group] = max(last_commit.get(group, updated_at), updated_at)
        cur.execute(
            "SELECT consumer_group, coalesce(sum(events), 0) FROM consumer_batches"
            " WHERE topic = %s AND committed_at > now() - make_interval(secs => %s) GROUP BY consumer_group",
            (topic, RATE_WINDOW_S),
        )
        recent = {group: int(events) for group, events in cur.fetchall()}
        cur.execute("SELECT consumer_group, count(*) FROM dead_letter_events WHERE topic = %s GROUP BY consumer_group", (topic,))
        dead = {group: int(n) for group, n in cur.fetchall()}
    names = groups or sorted(stored)
    return [
        GroupStatus(
            group=name,
            lag={p: end - stored.get(name, {}).get(p, 0) for p, end in sorted(ends.items())},
            events_per_s=recent.get(name, 0) / RATE_WINDOW_S,
            dead_letters=dead.get(name, 0),
            last_commit=last_commit.get(name),
        )
        for name in names
    ]


def render(statuses: list[GroupStatus], topic: str) -> str:
    if not statuses:
        return f"no consumer group has stored offsets of {topic} yet"
    lines = [f"topic {topic}"]
    for s in statuses:
        per_partition = ", ".join(f"p{p}={n:,}" for p, n in s.lag.items())
        last = s.last_commit.isoformat(timespec="seconds") if s.last_commit else "never"
        lines.append(
            f"{s.group}: lag {s.total_lag:,} ({per_partition}); {s.events_per_s:,.1f} events/s over the last minute; "
            f"{s.dead_letters:,} dead letters; last commit {last}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.status",
        description="Per consumer group: lag per partition (end offset minus the offset stored in PostgreSQL), "
        "events/s over the last minute and dead-letter counts.",
    )
    parser.add_argument("--group", action="append", help="only this group (repeatable; default: every group)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        print(render(collect(settings, args.group), settings.kafka.topic))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
