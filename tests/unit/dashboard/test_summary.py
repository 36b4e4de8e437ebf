"""The dashboard's figures without a database: deadline buckets, the funnel, and the summary a
snapshot and Kafka's end offsets make (lag unknown when Kafka did not answer)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics import funnels
from analytics.release import marker
from core import progress
from dashboard import summary
from dashboard.queries import JobRun, Snapshot

NOW = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due_in", "bucket"),
    [
        (timedelta(days=-40), "overdue"),
        (timedelta(seconds=-1), "overdue"),
        (timedelta(0), "due_within_3_days"),  # due now is not overdue yet, as the scheduler counts
        (timedelta(days=1), "due_within_3_days"),
        (timedelta(days=3, seconds=-1), "due_within_3_days"),
        (timedelta(days=3), "due_within_7_days"),
        (timedelta(days=7, seconds=-1), "due_within_7_days"),
        (timedelta(days=7), "later"),
        (timedelta(days=60), "later"),
    ],
)
def test_a_request_falls_in_the_bucket_of_how_close_its_deadline_is(due_in: timedelta, bucket: str) -> None:
    assert summary.deadline_bucket(NOW + due_in, NOW) == bucket


def test_deadlines_count_every_bucket_with_its_types_and_only_overdue_is_an_alert() -> None:
    requests = [
        ("erasure", NOW - timedelta(days=2)),
        ("access", NOW - timedelta(hours=1)),
        ("erasure", NOW + timedelta(days=1)),
        ("objection", NOW + timedelta(days=25)),
    ]
    assert summary.deadlines(requests, NOW) == [
        {"bucket": "overdue", "label": "Overdue", "count": 2, "by_type": {"access": 1, "erasure": 1}, "alert": True},
        {"bucket": "due_within_3_days", "label": "Due within 3 days", "count": 1, "by_type": {"erasure": 1}, "alert": False},
        {"bucket": "due_within_7_days", "label": "Due within 7 days", "count": 0, "by_type": {}, "alert": False},
        {"bucket": "later", "label": "Due later", "count": 1, "by_type": {"objection": 1}, "alert": False},
    ]
    assert not summary.deadlines([], NOW)[0]["alert"]


def people(viewed: int, carted: int, bought: int, m1: float | None = 95.0, m2: float | None = 310.44) -> funnels.Funnel:
    """Today's ordered funnel of people, as analytics.funnels.open_day returns it."""
    day = date(2026, 11, 23)
    rows = [funnels.FunnelRow(day, None, viewed, carted, bought, m1, m2)] if viewed else []
    return funnels.Funnel(3600, day, day, rows, [])


def test_the_funnel_gives_each_steps_people_share_of_the_step_before_median_and_bar() -> None:
    steps = summary.funnel(people(1200, 300, 45), 5)
    assert [(s["step"], s["people"], s["of_previous_pct"], s["median_from_previous_s"], s["bar_pct"]) for s in steps] == [
        ("page_view", 1200, None, None, 100.0),
        ("add_to_cart", 300, 25.0, 95.0, 25.0),
        ("purchase", 45, 15.0, 310.4, 3.8),
    ]


def test_a_step_of_fewer_than_k_people_is_suppressed_with_its_share_and_median() -> None:
    steps = summary.funnel(people(40, 6, 2), 5)
    assert [s["people"] for s in steps] == [40, 6, marker(5)]
    assert [s["of_previous_pct"] for s in steps] == [None, 15.0, None]
    assert [s["median_from_previous_s"] for s in steps] == [None, 95.0, None]
    assert steps[2]["bar_pct"] == 0.0
    assert [s["people"] for s in summary.funnel(people(40, 6, 2), 1)] == [40, 6, 2]


def test_an_empty_day_has_a_funnel_of_zeros_without_shares() -> None:
    steps = summary.funnel(people(0, 0, 0), 5)
    assert [(s["people"], s["of_previous_pct"], s["bar_pct"]) for s in steps] == [(0, None, 0.0)] * 3


def snapshot(**changes: object) -> Snapshot:
    values: dict[str, object] = {
        "now": NOW,
        "day": date(2026, 11, 23),
        "people_funnel": people(1200, 300, 45),
        "metrics": {
            "page_view": (1200, Decimal("0.00")),
            "add_to_cart": (300, Decimal("0.00")),
            "purchase": (45, Decimal("2345.67")),
        },
        "groups": {
            "raw-events-sink": progress.GroupProgress(
                "raw-events-sink", {0: 100, 1: 50}, NOW, 600, None, 1, None, progress.Freshness(0.02, 0.314, 1.2)
            ),
            "streaming-metrics": progress.GroupProgress("streaming-metrics", {0: 90}, None, 0, None, 0, NOW, None),
        },
        "per_minute": {"raw-events-sink": [0, 0, 0, 0, 0, 0, 0, 0, 100, 600]},
        "open_requests": [("erasure", NOW - timedelta(days=1)), ("access", NOW + timedelta(days=1))],
        "runs": [JobRun("batch", NOW, NOW + timedelta(seconds=6), "ok"), JobRun("retention", NOW, None, "running")],
        "dead_letters": [("invalid_json", 3), ("unknown_event_type", 1)],
    }
    values.update(changes)
    return Snapshot(**values)  # type: ignore[arg-type]


def test_the_summary_holds_todays_figures_the_pipeline_deadlines_runs_and_dead_letters() -> None:
    built = summary.build(snapshot(), {0: 110, 1: 50}, "user_events", 5)
    assert built["as_of"] == "2026-11-23T10:00:05+00:00" and built["refresh_s"] == 5
    today = built["today"]
    assert (today["day"], today["events"], today["revenue"], today["purchases"]) == ("2026-11-23", 1545, "2345.67", 45)
    assert [s["people"] for s in today["funnel"]] == [1200, 300, 45]
    assert (today["funnel_window_s"], today["min_cell_users"]) == (3600, 5)
    raw, streaming = built["pipeline"]["groups"]
    assert built["pipeline"]["kafka_reachable"] is True
    assert raw == {
        "group": "raw-events-sink",
        "instances": 1,
        "events_per_s": 10.0,
        "per_minute": [0, 0, 0, 0, 0, 0, 0, 0, 100, 600],
        "lag": 10,
        "lag_by_partition": {"0": 10, "1": 0},
        "freshness": {"last_best_s": 0.02, "last_worst_s": 0.31, "window_worst_s": 1.2},
        "last_commit": "2026-11-23T10:00:05+00:00",
        "broker_lost_since": None,
    }
    # A group that never committed in the window: zero throughput, the whole lag, its lost broker.
    assert streaming["per_minute"] == [0] * 10 and streaming["lag"] == 20 + 50
    assert streaming["broker_lost_since"] == "2026-11-23T10:00:05+00:00"
    assert built["privacy_requests"]["open"] == 2 and built["privacy_requests"]["overdue"] == 1
    due = "2026-11-23T10:00:05+00:00"
    assert built["scheduler"] == [
        {"job": "batch", "scheduled_for": due, "finished_at": "2026-11-23T10:00:11+00:00", "outcome": "ok"},
        {"job": "retention", "scheduled_for": due, "finished_at": None, "outcome": "running"},
    ]
    assert built["dead_letters"] == {
        "minutes": 60,
        "total": 4,
        "by_reason": [{"reason": "invalid_json", "count": 3}, {"reason": "unknown_event_type", "count": 1}],
    }


def test_without_kafka_the_lag_is_unknown_and_the_rest_is_still_shown() -> None:
    built = summary.build(snapshot(), None, "user_events", 5)
    assert built["pipeline"]["kafka_reachable"] is False
    assert [g["lag"] for g in built["pipeline"]["groups"]] == [None, None]
    assert [g["lag_by_partition"] for g in built["pipeline"]["groups"]] == [None, None]
    assert built["pipeline"]["groups"][0]["events_per_s"] == 10.0


def test_revenue_is_exact_to_the_cent_and_an_empty_day_is_zero() -> None:
    cents = snapshot(metrics={"purchase": (3, Decimal("0.10")), "page_view": (1, Decimal("0.20"))})
    assert summary.build(cents, {}, "t", 5)["today"]["revenue"] == "0.30"
    empty = summary.build(
        snapshot(metrics={}, people_funnel=people(0, 0, 0), groups={}, per_minute={}, open_requests=[], runs=[], dead_letters=[]),
        {},
        "t",
        5,
    )
    assert empty["today"] == {
        "day": "2026-11-23",
        "events": 0,
        "revenue": "0.00",
        "purchases": 0,
        "by_type": {},
        "funnel": summary.funnel(people(0, 0, 0), 5),
        "funnel_window_s": 3600,
        "min_cell_users": 5,
    }
    assert empty["pipeline"]["groups"] == [] and empty["privacy_requests"]["overdue"] == 0


def test_the_summary_carries_no_personal_data_only_counts_and_names_of_things() -> None:
    """Every string in it is a label, a code word, a group, a job, a reason, a day or a time."""
    built = summary.build(snapshot(), {0: 110, 1: 50}, "user_events", 5)

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [*value.keys(), *(s for v in value.values() for s in strings(v))]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert not [s for s in strings(built) if "@" in s]
