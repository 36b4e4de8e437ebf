"""gdpr.metrics: answers counted by type and outcome, deadlines published as counts (the query
itself runs in tests/integration/gdpr/test_metrics.py)."""

from __future__ import annotations

from collections import Counter

from prometheus_client import REGISTRY

from gdpr import metrics


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_answers_are_counted_by_type_and_outcome() -> None:
    before = value("platform_privacy_requests_processed_total", type="access", outcome="completed") or 0
    metrics.count_processed(Counter({("access", "completed"): 2, ("erasure", "not_found"): 1}))
    assert value("platform_privacy_requests_processed_total", type="access", outcome="completed") == before + 2


def test_deadlines_are_published_for_every_open_status_and_horizon() -> None:
    metrics.publish_deadlines(metrics.Deadlines({"unverified": 0, "pending": 4, "on_hold": 1}, {3: 2, 7: 3}, 1))
    assert value("platform_privacy_requests_open", status="pending") == 4
    assert value("platform_privacy_requests_open", status="unverified") == 0
    assert value("platform_privacy_requests_due_within_days", days="3") == 2
    assert value("platform_privacy_requests_due_within_days", days="7") == 3
    assert value("platform_privacy_requests_overdue") == 1
