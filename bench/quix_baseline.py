"""Baseline for the streaming stage: Quix Streams doing the same per-day, per-type sum in memory.

Runs in its own virtual environment (Quix Streams pins confluent-kafka below 2.13), started by
bench.run. Prints one JSON line: {"events": N, "seconds": S} from the first message to the Nth.
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

from quixstreams import Application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--group", default="bench-quix")
    args = parser.parse_args()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        # The embedded broker stalls a first join with the 45 s default (see DESIGN.md).
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        auto_create_topics=False,
    )
    topic = app.topic(args.topic, value_deserializer="json")
    totals: dict[tuple[str, str], tuple[int, Decimal]] = {}
    progress = {"n": 0, "started": 0.0, "finished": 0.0}

    def add(value: dict) -> None:  # type: ignore[type-arg]
        if progress["n"] == 0:
            progress["started"] = time.perf_counter()
        key = (value["event_timestamp"][:10], value["event_type"])
        count, revenue = totals.get(key, (0, Decimal(0)))
        totals[key] = (count + 1, revenue + Decimal(value["amount"] or 0))
        progress["n"] += 1
        if progress["n"] >= args.count:
            progress["finished"] = time.perf_counter()
            app.stop()

    sdf = app.dataframe(topic)
    sdf.update(add)
    app.run()
    print(json.dumps({"events": progress["n"], "seconds": progress["finished"] - progress["started"]}))


if __name__ == "__main__":
    main()
