"""Entry point of ``python -m scheduler``: run the periodic jobs as a service, show their status, or
run one job now."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from core import cli, metrics
from core.config import SchedulerSettings, Settings
from scheduler import status
from scheduler.jobs import jobs
from scheduler.runner import Runner
from scheduler.service import serve

logger = logging.getLogger("scheduler")

# Exit status of run-once when another run holds (or already ran) the job for that due time.
SKIPPED_EXIT = 3


def parse_time(text: str) -> datetime:
    """argparse type for --scheduled-for: an ISO 8601 time with an offset (or a day, midnight UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time such as 2026-11-23T00:15:00+00:00") from e
    if moment.tzinfo is None:
        if len(text) > 10:
            raise argparse.ArgumentTypeError(f"{text!r} has no offset: add +00:00 (every time here is UTC)")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    table = jobs(SchedulerSettings())
    listed = "\n".join(f"  {job.name:<18} {job.description} (default: {job.schedule.describe()})" for job in table.values())
    parser = argparse.ArgumentParser(
        prog="python -m scheduler",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the platform's periodic jobs on time (UTC), each as its own command with its own database "
        "login, and record every run in scheduler_runs. Without a command: run as a service until SIGTERM or Ctrl+C; "
        "on start, each job that missed its latest due time runs once (SCHEDULER_CATCH_UP).",
        epilog=f"jobs (times are set by the SCHEDULER_* variables, see docs/running.md, Scheduler):\n{listed}",
    )
    metrics.add_metrics_argument(parser, "scheduler")
    commands = parser.add_subparsers(dest="command", metavar="{run,status,run-once}")
    commands.add_parser("run", help="run as a service (the default)")
    show = commands.add_parser("status", help="each job's schedule, next due time, last success and latest runs")
    show.add_argument("--runs", type=int, default=3, metavar="N", help="latest runs shown per job (default: 3)")
    once = commands.add_parser(
        "run-once",
        help="run one job now and record it; exit 0 ok, 1 failed, 3 skipped (another run holds that due time)",
    )
    once.add_argument("job", choices=list(table), help="the job to run")
    once.add_argument(
        "--scheduled-for",
        type=parse_time,
        metavar="TIME",
        help="the due time this run stands for, ISO 8601 (default: now); the daily report reports the day before it",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # our own lines say what runs
        if args.command == "status":
            now = datetime.now(UTC)
            table = jobs(settings.scheduler).values()
            print(status.render(status.collect(settings, table, now, max(args.runs, 1)), now, settings.scheduler.catch_up))
            return 0
        stop = cli.install_stop_handlers()
        if args.command == "run-once":
            job = jobs(settings.scheduler)[args.job]
            due = args.scheduled_for or datetime.now(UTC).replace(microsecond=0)
            result = Runner(settings, stop, retry=False).run_slot(job, due)
            line = f"{job.name} due {due.isoformat()}: {result.outcome}"
            line += f" (run {result.run_id})" if result.run_id is not None else ""
            extra = result.error or result.detail
            print(line + (f": {extra}" if extra else ""), file=sys.stdout if result.outcome == "ok" else sys.stderr)
            return {"ok": 0, "failed": 1}.get(result.outcome, SKIPPED_EXIT)
        logger.info("scheduler starting: %s; %s", settings.describe(), settings.scheduler.describe())
        exporter = metrics.serve(settings, "scheduler", args.metrics_port)
        try:
            return serve(settings, stop)
        finally:
            if exporter is not None:
                exporter.close()

    cli.run(execute)


if __name__ == "__main__":
    main()
