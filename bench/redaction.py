"""The redactor's cost per event: its normal case, its worst case within the bounds, and the raw
sink's encode step on the generator's events; CPU only, in this process, no stack needed.

``measure()`` times (a) the normal case: an event whose metadata holds what a shop's form sends
(a name, an email, a phone, an address, an IP, a note); (b) the worst cases: events built to be
expensive and as large as core.pii.metadata_refusal lets through (phone-shaped values, long
strings of phone-like runs, many email-shaped values, many keys); (c) the raw sink's encode
(serialise, prefilter, redact, CSV) per event of the generator's traffic. The worst case is
reported as a ratio against the normal case measured in the same run (target: at most 20x).
``python -m bench.redaction`` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.config import MetadataLimits
from core.events import parse_event
from core.pii import metadata_refusal, redact_metadata, redact_serialised
from data_generators.events import EventFactory

# The target of issue 26: no event may cost the redactor more than this many typical ones.
WORST_TO_NORMAL_TARGET = 20.0
NORMAL = {
    "page": "/checkout/confirmation",
    "device": "mobile",
    "browser": "firefox",
    "name": "Jane Doe",
    "email": "jane.doe@example.com",
    "phone": "+49 30 1234567",
    "shipping_address": "Hauptstr. 5, 10115 Berlin",
    "ip": "203.0.113.7",
    "note": "please call 030 12345678 before delivery, or write to jane@example.org",
}


def _time_per_call(work: Callable[[], object], *, seconds: float) -> float:
    """Seconds per call of ``work``, the best of five rounds of about ``seconds`` / 5 each."""
    work()
    started = time.perf_counter()
    work()
    once = max(time.perf_counter() - started, 1e-7)
    calls = max(1, int(seconds / 5 / once))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def worst_cases(limits: MetadataLimits, seed: int = 26) -> dict[str, dict[str, Any]]:
    """Metadata built to cost the redactor as much as the bounds allow, one per way of trying."""
    rng = random.Random(seed)
    values = limits.max_values - 1  # the bounds count the values; leave room for no other key

    def phone() -> str:
        return f"+49 30 {rng.randrange(1_000_000, 9_999_999)}"

    # Each phone shape distinct, so the phone check's cache does not help.
    run_length = len(phone()) + 1
    long_phones = " ".join(phone() for _ in range(limits.max_string_chars // run_length))
    cases = {
        "phone-shaped values": {f"p{i}": phone() for i in range(values)},
        "long strings of phone-like runs": {
            f"t{i}": long_phones for i in range(max(1, limits.max_bytes // len(long_phones) - 1))
        },
        "national numbers without 0": {
            f"n{i}": f"{rng.randrange(100, 999)} {rng.randrange(1000000, 9999999)}" for i in range(values)
        },
        "email-shaped values": {f"e{i}": f"user{i}%40example{i}.com" for i in range(values)},
        "keys of names": {f"customer_name_{i}": f"Name {i}" for i in range(values)},
        "card-shaped values": {f"c{i}": f"4111.1111.1111.{rng.randrange(1000, 9999)}" for i in range(values)},
    }
    # Every case is one the collector and the consumers accept, or it is not a case at all.
    fitting = {}
    for name, metadata in cases.items():
        while metadata_refusal(metadata, limits) is not None and metadata:
            metadata.pop(next(reversed(metadata)))
        fitting[name] = metadata
    return fitting


def _raw_sink_encode_us(seconds: float) -> float:
    """Microseconds per event of the raw sink's redaction (the core of its encode step,
    core.pii.redact_serialised; the bench imports no stage's entry point) on 1,000 of the
    generator's events."""
    factory = EventFactory([str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4)) for i in range(1_000)], seed=7)
    now = datetime.now(UTC)
    metadatas = [parse_event(m["value"], now).metadata for m in factory.messages(1_000, now)]
    return _time_per_call(lambda: redact_serialised(metadatas, Counter()), seconds=seconds) / len(metadatas) * 1e6


def measure(limits: MetadataLimits | None = None, seconds: float = 2.0) -> dict[str, Any]:
    """The normal case's and each worst case's microseconds per event, and the worst's ratio."""
    limits = limits or MetadataLimits()
    normal = _time_per_call(lambda: redact_metadata(NORMAL, Counter()), seconds=seconds) * 1e6
    worst: dict[str, float] = {}
    for name, metadata in worst_cases(limits).items():
        worst[name] = _time_per_call(lambda m=metadata: redact_metadata(m, Counter()), seconds=seconds) * 1e6  # type: ignore[misc]
    name, cost = max(worst.items(), key=lambda item: item[1])
    return {
        "normal_us": normal,
        "worst_cases_us": worst,
        "worst_case": name,
        "worst_us": cost,
        "ratio": cost / normal,
        "target": WORST_TO_NORMAL_TARGET,
        "raw_sink_encode_us_per_event": _raw_sink_encode_us(seconds),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.redaction``: print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.redaction", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each case (default: 2)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(seconds=args.seconds), indent=2))


if __name__ == "__main__":
    main()
