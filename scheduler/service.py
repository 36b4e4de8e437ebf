"""The scheduler as a service: APScheduler fires each job at its due times (UTC), one job at a time;
on start, the jobs that missed a due time while it was down run once (catch-up)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from core import metrics
from core.config import Settings
from scheduler.jobs import jobs
from scheduler.runner import Runner

logger = logging.getLogger(__name__)

# How often the main thread looks at the stop flag (signals are handled between its waits).
WAKE_S = 1.0


def serve(settings: Settings, stop: threading.Event) -> int:
    """Run until ``stop`` is set (SIGTERM, Ctrl+C); then let the running job stop its command and
    record its outcome, and return 0."""
    table = list(jobs(settings.scheduler).values())
    runner = Runner(settings, stop, retry=True)
    # Before anything runs: a database that does not answer now is a one-line error, not a retry.
    plan = runner.plan_catch_up(table) if settings.scheduler.catch_up else []
    scheduler = BackgroundScheduler(
        timezone=UTC,
        # One job at a time: they share this host with the pipeline, and the nightly batch must have
        # finished before the report of the same night reads its figures.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        # A job that could not start on time (another one was running) still runs once, however
        # late; several missed firings of one job run once.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    if plan:
        scheduler.add_job(runner.catch_up, args=[plan], id="catch-up", name="catch-up")
    elif not settings.scheduler.catch_up:
        logger.info("catch-up is off (SCHEDULER_CATCH_UP=false): missed due times are not run")
    for job in table:
        metrics.expect_job(job.name, job.schedule.period.total_seconds())
        scheduler.add_job(runner.run_due, trigger=job.schedule.trigger(), args=[job], id=job.name, name=job.name)
    scheduler.start()
    now = datetime.now(UTC)
    for job in table:
        logger.info("%s: %s, next due %s: %s", job.name, job.schedule.describe(), job.schedule.next_due(now).isoformat(),
                    job.description)  # fmt: skip
    try:
        while not stop.wait(WAKE_S):
            pass
        logger.info("stopping: the running job, if any, stops its command and records its outcome")
    finally:
        scheduler.shutdown(wait=True)
    logger.info("scheduler stopped")
    return 0
