"""The whole platform in one command (``make demo``), on the embedded stack.

Starts the stack, seeds users, runs both consumers and the generator concurrently, waits until
the consumers have caught up, runs the batch job and the comparison (which must show zero
difference), files and processes privacy requests, and prints both reports. Every step runs
the same command a user would type, so the output shows how to use each part. Nothing is left
running unless ``--keep-running`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from consumers.store_raw_events import DEFAULT_GROUP as RAW_GROUP
from consumers.streaming_metrics import DEFAULT_GROUP as STREAM_GROUP
from core import db, stack
from core.cli import setup_logging
from core.config import PROJECT_ROOT, load_settings
from core.errors import PlatformError
from core.sink import lag

logger = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 600.0
# Days of event history the demo generates (see generate_events --backfill-days).
DEMO_DAYS = 14


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def command(*args: str, check: bool = True) -> int:
    """Run ``python -m ...`` like a user would, showing the command and its output."""
    print(f"$ python -m {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, check=False).returncode
    if check and code != 0:
        raise PlatformError(f"`python -m {' '.join(args)}` exited with status {code}")
    return code


def start_consumer(module: str, log_dir: Path) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{module.rsplit('.', 1)[1]}.log"
    print(f"$ python -m {module} &   (log: {log.relative_to(PROJECT_ROOT)})", flush=True)
    with open(log, "ab") as handle:
        return subprocess.Popen([sys.executable, "-m", module], cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT)


def stop_consumer(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_consumers(processes: list[subprocess.Popen[bytes]]) -> None:
    settings = load_settings()
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    next_line = 0.0
    while True:
        behind = {group: sum(lag(settings, group).values()) for group in (RAW_GROUP, STREAM_GROUP)}
        if all(v == 0 for v in behind.values()):
            print("consumers caught up: lag 0 on every partition", flush=True)
            return
        if any(p.poll() is not None for p in processes):
            raise PlatformError("a consumer exited early; see its log under .local/logs/")
        if time.monotonic() > deadline:
            raise PlatformError(f"consumers did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s: lag {behind}")
        if time.monotonic() >= next_line:
            print(f"waiting for consumers: lag {behind}", flush=True)
            next_line = time.monotonic() + 2.0
        time.sleep(0.2)


def demo(users: int, events: int, keep_running: bool) -> None:
    banner("1. embedded stack (python -m core.stack up)")
    info = stack.up()
    os.environ.update(info.env())
    print(f"PostgreSQL: {info.database_url}\nKafka:      {info.kafka_bootstrap}")
    try:
        run_steps(users, events)
    finally:
        if keep_running:
            print("\nthe embedded stack is still running (`make down` stops it)")
        else:
            stack.down()
            print("\nembedded stack stopped; its data stays in .local/ (`make up` starts it again)")


def run_steps(users: int, events: int) -> None:
    started = datetime.now(UTC)

    banner(f"2. {users:,} users")
    command("data_generators.generate_users", "--count", str(users))

    with ExitStack() as running:
        banner(f"3. both consumers and the generator, {events:,} events")
        log_dir = PROJECT_ROOT / ".local" / "logs"
        consumers = [start_consumer(m, log_dir) for m in ("consumers.store_raw_events", "consumers.streaming_metrics")]
        for process in consumers:
            running.callback(stop_consumer, process)
        # Two weeks of history, so the reports have a trend and a previous day to compare with.
        command("data_generators.generate_events", "--rate", "0", "--count", str(events), "--backfill-days", str(DEMO_DAYS))
        wait_for_consumers(consumers)

    settings = load_settings()
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT event_date FROM metrics_streaming_daily WHERE updated_at >= %s ORDER BY 1", (started,))
        days = [row[0].isoformat() for row in cur.fetchall()]
        cur.execute("SELECT email FROM users_pii WHERE email IS NOT NULL ORDER BY user_id LIMIT 3")
        emails = [row[0] for row in cur.fetchall()]

    banner("4. batch job and Lambda reconciliation")
    if days:
        command("batch.batch_metrics", "--from", days[0], "--to", days[-1])
        command("batch.compare_batch_vs_stream", "--from", days[0], "--to", days[-1])

    banner("5. privacy requests: erasure and access")
    requests = [(e, "erasure") for e in (emails[0], emails[1].upper())] + [(emails[2], "access")] if len(emails) >= 3 else []
    requests.append(("nobody@example.invalid", "erasure"))
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO privacy_requests (email, request_type) VALUES (%s, %s)", requests)
    print(
        f"inserted {len(requests)} rows into privacy_requests: two erasures (one email in upper case), "
        "one access request, one unknown email"
    )
    command("gdpr.process_privacy_requests")

    banner("6. reports")
    # The last closed day (batch figures) and today (streaming figures); --from/--to for all.
    for day in days[-2:]:
        command("reports.generate_daily_report", day)
    command("reports.gdpr_audit_report")
    print(f"\nreport files are in {settings.reports_dir.resolve()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m core.demo",
        description="Run the whole platform end to end on the embedded stack and print both reports.",
    )
    parser.add_argument("--users", type=int, default=10_000, help="users to seed (default: 10000)")
    parser.add_argument("--events", type=int, default=300_000, help="events to generate (default: 300000)")
    parser.add_argument("--keep-running", action="store_true", help="leave the embedded stack running at the end")
    args = parser.parse_args(argv)
    setup_logging(os.environ.get("LOG_LEVEL", "WARNING").upper())
    try:
        demo(args.users, args.events, args.keep_running)
    except PlatformError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
