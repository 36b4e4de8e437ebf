"""When a job is due: the latest and next due times in UTC, the catch-up decision, and the
APScheduler trigger firing at the same times as the scheduler's own computation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduler.schedule import Schedule, needs_catch_up

HOURLY = Schedule(minute=5)
DAILY = Schedule(minute=15, hour=0)
WEEKLY = Schedule(minute=0, hour=2, weekday=0)  # Mondays at 02:00


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "now", "latest", "following"),
    [
        (DAILY, "2026-11-23 10:00", "2026-11-23 00:15", "2026-11-24 00:15"),
        (DAILY, "2026-11-23 00:14:59", "2026-11-22 00:15", "2026-11-23 00:15"),
        (DAILY, "2026-11-23 00:15", "2026-11-23 00:15", "2026-11-24 00:15"),  # due exactly now
        (DAILY, "2027-01-01 00:00", "2026-12-31 00:15", "2027-01-01 00:15"),  # over a year's end
        (DAILY, "2028-03-01 00:10", "2028-02-29 00:15", "2028-03-01 00:15"),  # a leap day
        (HOURLY, "2026-11-23 10:04", "2026-11-23 09:05", "2026-11-23 10:05"),
        (HOURLY, "2026-11-23 10:05", "2026-11-23 10:05", "2026-11-23 11:05"),
        (HOURLY, "2026-11-23 00:01", "2026-11-22 23:05", "2026-11-23 00:05"),
        (WEEKLY, "2026-11-23 02:00", "2026-11-23 02:00", "2026-11-30 02:00"),  # 2026-11-23 is a Monday
        (WEEKLY, "2026-11-23 01:59", "2026-11-16 02:00", "2026-11-23 02:00"),
        (WEEKLY, "2026-11-29 23:59", "2026-11-23 02:00", "2026-11-30 02:00"),  # Sunday night
        (WEEKLY, "2026-11-25 12:00", "2026-11-23 02:00", "2026-11-30 02:00"),
    ],
)
def test_latest_and_next_due_times(schedule: Schedule, now: str, latest: str, following: str) -> None:
    assert schedule.latest_due(at(now)) == at(latest)
    assert schedule.next_due(at(now)) == at(following)


def test_due_times_are_utc_whatever_the_zone_of_now() -> None:
    berlin_morning = datetime(2026, 11, 23, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 23:30 UTC the day before
    assert DAILY.latest_due(berlin_morning) == at("2026-11-22 00:15")
    assert DAILY.latest_due(berlin_morning).tzinfo == UTC


def test_schedules_describe_themselves_for_people() -> None:
    assert [s.describe() for s in (HOURLY, DAILY, WEEKLY)] == ["hourly at :05", "daily at 00:15", "weekly on mon at 02:00"]


@pytest.mark.parametrize(("minute", "hour", "weekday"), [(60, None, None), (0, 24, None), (0, None, 1), (0, 1, 7)])
def test_impossible_schedules_are_refused(minute: int, hour: int | None, weekday: int | None) -> None:
    with pytest.raises(ValueError):
        Schedule(minute=minute, hour=hour, weekday=weekday)


@pytest.mark.parametrize("schedule", [HOURLY, DAILY, WEEKLY, Schedule(minute=59, hour=23, weekday=6)])
def test_the_apscheduler_trigger_fires_at_the_next_due_time(schedule: Schedule) -> None:
    trigger = schedule.trigger()
    rng = random.Random(16)
    start = at("2026-01-01 00:00")
    for _ in range(200):
        now = start + timedelta(seconds=rng.randrange(2 * 366 * 86_400))
        fired = trigger.get_next_fire_time(None, now)
        # APScheduler's next fire time is at or after now; ours is strictly after a due instant.
        expected = now if schedule.latest_due(now) == now else schedule.next_due(now)
        assert fired == expected, now


@pytest.mark.parametrize(
    ("last_success", "expected"),
    [
        (None, True),  # never succeeded (a fresh install, or every run failed)
        ("2026-11-22 00:15", True),  # the run due 2026-11-23 00:15 was missed
        ("2026-11-23 00:15", False),  # the latest due time ran
        ("2026-11-23 09:30", False),  # a run-once after it covers it
    ],
)
def test_catch_up_runs_a_job_whose_latest_due_time_has_no_successful_run(last_success: str | None, expected: bool) -> None:
    latest = DAILY.latest_due(at("2026-11-23 10:00"))
    assert needs_catch_up(None if last_success is None else at(last_success), latest) is expected
