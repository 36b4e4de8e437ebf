"""When a job is due: hourly, daily or weekly times in UTC, the latest and next due times, the
catch-up decision, and the APScheduler trigger that fires at the same times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from core.config import WEEKDAYS

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Schedule:
    """Every hour at ``minute``; with ``hour``, every day at that time; with ``weekday`` too (0 is
    Monday), every week. Always UTC: every day in this platform is a UTC day, and UTC has no
    daylight saving time, so a due time is never skipped or repeated."""

    minute: int
    hour: int | None = None
    weekday: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.minute <= 59 or (self.hour is not None and not 0 <= self.hour <= 23):
            raise ValueError(f"not a time of day: hour {self.hour}, minute {self.minute}")
        if self.weekday is not None and (self.hour is None or not 0 <= self.weekday <= 6):
            raise ValueError(f"a weekly schedule needs a weekday 0-6 and an hour: {self!r}")

    @property
    def period(self) -> timedelta:
        return HOUR if self.hour is None else DAY if self.weekday is None else WEEK

    def latest_due(self, now: datetime) -> datetime:
        """The latest due time at or before ``now`` (an aware datetime)."""
        now = now.astimezone(UTC)
        due = now.replace(minute=self.minute, second=0, microsecond=0)
        if self.hour is not None:
            due = due.replace(hour=self.hour)
        if self.weekday is not None:
            due -= timedelta(days=(now.weekday() - self.weekday) % 7)
        return due if due <= now else due - self.period

    def next_due(self, now: datetime) -> datetime:
        """The first due time strictly after ``now``."""
        return self.latest_due(now) + self.period

    def describe(self) -> str:
        """For people: ``hourly at :05``, ``daily at 00:15``, ``weekly on mon at 02:00`` (UTC)."""
        if self.hour is None:
            return f"hourly at :{self.minute:02d}"
        at = f"{self.hour:02d}:{self.minute:02d}"
        return f"daily at {at}" if self.weekday is None else f"weekly on {WEEKDAYS[self.weekday]} at {at}"

    def trigger(self) -> CronTrigger:
        """An APScheduler trigger firing at exactly these times (tests check they agree)."""
        return CronTrigger(
            minute=self.minute,
            hour="*" if self.hour is None else self.hour,
            day_of_week="*" if self.weekday is None else WEEKDAYS[self.weekday],
            timezone=UTC,
        )


def needs_catch_up(last_success: datetime | None, latest_due: datetime) -> bool:
    """True when a job's latest due time has passed without a successful run for it or after it
    (a job that never succeeded is due too): on start, the scheduler runs it once for that time."""
    return last_success is None or last_success < latest_due
