"""Consumer status per group: running instances, lag, freshness, events/s, dead letters, and a lost broker.

Freshness is how long after being produced (its Kafka timestamp: when the generator, another
producer or the collector handed it to Kafka) an event became visible in PostgreSQL: for the
newest and the oldest event of the group's last batch, and the worst of the last minute.

Lag is the end of each partition in Kafka minus the offset the group stored in PostgreSQL (the
only record of progress: nothing is committed to Kafka).
"""

from __future__ import annotations

import argparse

from core import cli, db, kafka, progress
from core.config import Settings
from core.errors import ServiceUnavailable

RATE_WINDOW_S = 60


def collect(settings: Settings, groups: list[str] | None = None) -> list[progress.GroupStatus]:
    """Status of ``groups`` (default: every group that stored offsets of the topic or runs on it)."""
    topic = settings.kafka.topic
    try:
        ends: dict[int, int] | None = kafka.end_offsets(settings.kafka, topic)
    except ServiceUnavailable:
        # What PostgreSQL knows is still worth showing, a lost broker above all.
        ends = None
    with db.connection(settings.database, application_name="status", role=db.MONITOR_ROLE) as conn, conn, conn.cursor() as cur:
        known = progress.overview(cur, topic, RATE_WINDOW_S)
    return progress.statuses(known, ends, RATE_WINDOW_S, groups or None)


def freshness_text(freshness: progress.Freshness | None) -> str:
    """ "freshness 0.02-0.31 s (last batch), at most 1.20 s in the last minute", or why not."""
    if freshness is None:
        return "freshness unknown (no batch in the last minute)"
    return (
        f"freshness {freshness.last_best:.2f}-{freshness.last_worst:.2f} s (last batch),"
        f" at most {freshness.window_worst:.2f} s in the last minute"
    )


def render(statuses: list[progress.GroupStatus], topic: str, kafka_at: str = "") -> str:
    if not statuses:
        return f"no consumer group has stored offsets of {topic} yet"
    lines = [f"topic {topic}"]
    for s in statuses:
        if s.lag is None:
            lag = f"lag unknown (Kafka at {kafka_at} is not reachable)"
        else:
            lag = f"lag {s.total_lag:,} ({', '.join(f'p{p}={n:,}' for p, n in s.lag.items())})"
        last = s.last_commit.isoformat(timespec="seconds") if s.last_commit else "never"
        running = f"{s.instances} running" if s.instances else "not running"
        dead = "" if s.dead_letters is None else f"{s.dead_letters:,} dead letters; "
        lines.append(
            f"{s.group}: {running}; {lag}; {s.events_per_s:,.1f} events/s over the last "
            f"minute; {dead}last commit {last}; {freshness_text(s.freshness)}"
        )
        if s.broker_lost_since is not None:
            lines.append(
                f"  BROKER UNREACHABLE since {s.broker_lost_since.isoformat(timespec='seconds')}: "
                "an instance of this group cannot reach Kafka and consumes nothing"
            )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.status",
        description="Per consumer group: lag per partition (end offset minus the offset stored in PostgreSQL), "
        "freshness (seconds from an event's production to its commit: last batch, worst of the last minute), "
        "events/s over the last minute and dead-letter counts.",
    )
    parser.add_argument("--group", action="append", help="only this group (repeatable; default: every group)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        print(render(collect(settings, args.group), settings.kafka.topic, settings.kafka.bootstrap_servers))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
