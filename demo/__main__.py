"""The whole platform in one command (``make demo``), on the embedded stack.

Starts the stack, seeds users (most of them consenting to analytics), runs both consumers, the
HTTP collector and the generator concurrently (most events straight into Kafka, some through
the collector with a write key, and a consent withdrawal through it), waits until the consumers
have caught up, runs the batch job and the comparison (which must show zero difference), scores
every buyer (RFM segments, lifetime values: the report's sections on them), files
and processes privacy requests (an operator's by SQL; a person's through the privacy API, with
the code read from the mail the stack's SMTP server wrote; an erasure held by a DPO's legal
hold), checks the audit trail's hash chain, and prints both reports. The scheduler runs
throughout (its catch-up runs each periodic job whose due time passed once when it starts), and
its record of runs is shown last; so does the live dashboard, whose address is printed first, to
watch the events, the consumers and the requests arrive. It runs as production should, with
``CONSENT_MODE=required``: events of users without consent are dropped and counted. Every step
runs the same command a user would type, so the output shows how to use each part. Nothing is
left running unless ``--keep-running`` is given.

``python -m demo [--users N] [--events N] [--keep-running]``; ``make demo`` runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from urllib import error as urlerror
from urllib import request as urlrequest

import devstack
from core import config, db
from core.cli import one_line_errors, setup_logging
from core.config import PROJECT_ROOT, Settings, load_settings
from core.errors import PlatformError
from core.progress import lag
from demo import privacy

logger = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 600.0
# Days of event history the demo generates (see generate_events --backfill-days): twelve weeks,
# the daily report's retention heatmap (reports.business.RETENTION_COHORTS weekly cohorts), and
# long enough for the lifetime-value fit to tell drop-out from rare buying (with 14 days its
# information matrix was not positive definite: no intervals). The users sign up over the same
# days (generate_users --signup-days), so every cohort of the heatmap is filled.
DEMO_DAYS = 84
# Share of the demo's users who consent to analytics (generate_users --consent-share).
CONSENT_SHARE = 0.8
# Events the demo sends through the HTTP collector, in batches of 100; the rest go to Kafka.
HTTP_EVENTS = 20_000
COLLECTOR_READY_TIMEOUT_S = 60.0
DASHBOARD_READY_TIMEOUT_S = 60.0


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def command(env: Mapping[str, str], *args: str, check: bool = True, shown: tuple[str, str] | None = None) -> int:
    """Run ``python -m ...`` like a user would, showing the command and its output; ``shown``
    replaces the value after an option in what is printed (a secret)."""
    printed = list(args)
    if shown is not None and shown[0] in printed:
        printed[printed.index(shown[0]) + 1] = shown[1]
    print(f"$ python -m {' '.join(printed)}", flush=True)
    code = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, check=False).returncode
    if check and code != 0:
        raise PlatformError(f"`python -m {' '.join(args)}` exited with status {code}")
    return code


def start_service(env: Mapping[str, str], module: str, log_dir: Path) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
    shown = log.relative_to(PROJECT_ROOT) if log.is_relative_to(PROJECT_ROOT) else log
    print(f"$ python -m {module} &   (log: {shown})", flush=True)
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def stop_service(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_collector(url: str, process: subprocess.Popen[bytes], log_dir: Path) -> None:
    """Poll the collector's readiness (broker and database reachable)."""
    deadline = time.monotonic() + COLLECTOR_READY_TIMEOUT_S
    while True:
        try:
            with urlrequest.urlopen(f"{url}/readyz", timeout=2) as answer:  # noqa: S310 - our own http:// URL
                if answer.status == 200:
                    print(f"collector ready at {url}", flush=True)
                    return
        except (urlerror.URLError, OSError):
            pass
        if process.poll() is not None:
            raise PlatformError(f"the collector exited early; see its log under {log_dir}")
        if time.monotonic() > deadline:
            raise PlatformError(f"the collector at {url} was not ready within {COLLECTOR_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def start_dashboard(env: Mapping[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """The live dashboard, for the demo's duration; its address once it answers."""
    settings = load_settings(env)
    url = f"http://{settings.dashboard.host}:{settings.dashboard.port}"
    process = start_service(env, "dashboard", log_dir)
    deadline = time.monotonic() + DASHBOARD_READY_TIMEOUT_S
    while True:
        try:
            with urlrequest.urlopen(f"{url}/healthz", timeout=2) as answer:  # noqa: S310 - our own http:// URL
                if answer.status == 200:
                    print(f"live dashboard: open {url} to watch the demo (it stops with the demo)", flush=True)
                    return process
        except (urlerror.URLError, OSError):
            pass
        if process.poll() is not None:
            raise PlatformError(f"the dashboard exited early; see its log under {log_dir}")
        if time.monotonic() > deadline:
            stop_service(process)
            raise PlatformError(f"the dashboard at {url} did not answer within {DASHBOARD_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def start_analysts_api(env: Mapping[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """The analysts' API, for the demo's duration, once it answers; an analyst's account for it."""
    settings = load_settings(env)
    url = f"http://{settings.analysts_api.host}:{settings.analysts_api.port}"
    process = start_service(env, "analytics.api", log_dir)
    deadline = time.monotonic() + DASHBOARD_READY_TIMEOUT_S
    while True:
        try:
            with urlrequest.urlopen(f"{url}/healthz", timeout=2) as answer:  # noqa: S310 - our own http:// URL
                if answer.status == 200:
                    break
        except (urlerror.URLError, OSError):
            pass
        if process.poll() is not None:
            raise PlatformError(f"the analysts' API exited early; see its log under {log_dir}")
        if time.monotonic() > deadline:
            stop_service(process)
            raise PlatformError(f"the analysts' API at {url} did not answer within {DASHBOARD_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    # The token is printed once, by the command itself: the demo's output shows how to make one.
    command(env, "analytics.accounts", "create", f"demo-analyst-{datetime.now(UTC):%Y%m%d%H%M%S}", "--budget", "10")
    print(f"analysts' API: {url} (its OpenAPI document at {url}/openapi.json; docs/analysts_api.md)", flush=True)
    return process


def create_write_key(env: Mapping[str, str]) -> str:
    """A write key for the demo's shop, from the keys command (the key is its last line): a server
    key (no browser origins), as the shop's back end and its consent platform use, so its one
    address is not held to a browser's share of the key's rate."""
    args = ["collector.keys", "create", f"demo-shop-{datetime.now(UTC):%Y%m%d%H%M%S}", "--consent"]
    print(f"$ python -m {' '.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlatformError(f"`python -m {' '.join(args)}` exited with status {result.returncode}: {result.stderr.strip()}")
    key = result.stdout.strip().splitlines()[-1]
    print(f"key created: {mask_key(key)} (printed once, stored only as a hash)", flush=True)
    return key


def mask_key(key: str) -> str:
    return f"{key[:7]}..."


def withdraw_consent(settings: Settings, url: str, key: str) -> None:
    """One consenting user withdraws analytics consent through the collector, as a shop's
    consent banner would: their later events are dropped by both consumers."""
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT user_id::text FROM consent_current WHERE granted ORDER BY user_id LIMIT 1")
        row = cur.fetchone()
    if row is None:
        return
    body = json.dumps({"user_id": row[0], "purpose": "analytics", "granted": False}).encode()
    print(
        f"$ curl -X POST {url}/v1/consent -H 'Authorization: Bearer {mask_key(key)}' "
        f"-H 'Content-Type: application/json' -d '{body.decode()}'",
        flush=True,
    )
    call = urlrequest.Request(  # noqa: S310 - our own http:// URL
        f"{url}/v1/consent",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urlrequest.urlopen(call, timeout=10) as answer:  # noqa: S310 - our own http:// URL
            print(f"{answer.status} {answer.read().decode()}", flush=True)
    except urlerror.HTTPError as e:
        raise PlatformError(f"the collector refused the consent change: {e.code} {e.read().decode()}") from e


def wait_for_consumers(settings: Settings, processes: list[subprocess.Popen[bytes]], log_dir: Path) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    next_line = 0.0
    groups = (settings.groups.raw_events, settings.groups.streaming_metrics)
    while True:
        behind = {group: sum(lag(settings, group).values()) for group in groups}
        if all(v == 0 for v in behind.values()):
            print("consumers caught up: lag 0 on every partition", flush=True)
            return
        if any(p.poll() is not None for p in processes):
            raise PlatformError(f"a consumer exited early; see its log under {log_dir}")
        if time.monotonic() > deadline:
            raise PlatformError(f"consumers did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s: lag {behind}")
        if time.monotonic() >= next_line:
            print(f"waiting for consumers: lag {behind}", flush=True)
            next_line = time.monotonic() + 2.0
        time.sleep(0.2)


def port_or_free(setting: str) -> str:
    """The port ``setting`` names (COLLECTOR_PORT, ...) when it is free, else one that is."""
    port = config.merged_values()[setting]
    return port if port.isdigit() and devstack.port_is_free(int(port)) else str(devstack.free_port())


def demo(users: int, events: int, keep_running: bool, data_dir: Path = devstack.DEFAULT_DATA_DIR) -> None:
    banner("1. embedded stack (python -m devstack up)")
    info = devstack.up(data_dir)
    print(f"PostgreSQL: {info.database_url}\nKafka:      {info.kafka_bootstrap}")
    # Every command of the demo goes to this stack, whatever DATABASE_URL the shell exports.
    # It runs as production should: only events of users with analytics consent count. The
    # collector and the dashboard take their default ports unless those are taken. The services it
    # starts serve no metrics: they stop with the demo, and their default metrics ports may be
    # taken by the services a developer runs beside it.
    ports = {name: port_or_free(name) for name in ("COLLECTOR_PORT", "DASHBOARD_PORT", "ANALYSTS_API_PORT")}
    env = config.child_environment(
        {
            **info.env(),
            "STACK_FILE": str(info.stack_file),
            "CONSENT_MODE": "required",
            **ports,
            "METRICS_ENABLED": "false",
        }
    )
    try:
        run_steps(env, users, events, info.data_dir / "logs", info.mail_dir)
    finally:
        if keep_running:
            print("\nthe embedded stack is still running (`make down` stops it)")
        else:
            devstack.down(info.data_dir)
            again = (
                "make up" if info.data_dir == devstack.DEFAULT_DATA_DIR else f"python -m devstack up --data-dir {info.data_dir}"
            )
            print(f"\nembedded stack stopped; its data stays in {info.data_dir} (`{again}` starts it again)")


# -- what the demo reads and files itself, as a user at a psql prompt would ---------------------


def days_written_since(settings: Settings, started: datetime) -> list[date]:
    """The days whose streaming metrics this run has updated."""
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT event_date FROM metrics_streaming_daily WHERE updated_at >= %s ORDER BY 1", (started,))
        return [row[0] for row in cur.fetchall()]


def some_emails(settings: Settings, n: int) -> list[str]:
    """The email addresses of the first ``n`` users: the people the demo's requests are about."""
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT email FROM users_pii WHERE email IS NOT NULL ORDER BY user_id LIMIT %s", (n,))
        return [row[0] for row in cur.fetchall()]


def file_requests(settings: Settings, requests: list[tuple[str, str]]) -> None:
    """Insert (email, request type) rows into privacy_requests, as an operator would."""
    with db.connection(settings.database, application_name="demo") as conn, conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO privacy_requests (email, request_type) VALUES (%s, %s)", requests)


def person_files_through_the_api(env: Mapping[str, str], settings: Settings, log_dir: Path, mail_dir: Path, address: str) -> None:
    """Step 7: the privacy API, a mailed code, the processor, a download that works once."""
    banner("7. a person's own access request through the privacy API, verified by a mailed code")
    port = config.merged_values()["PRIVACY_API_PORT"]
    if not port.isdigit() or not devstack.port_is_free(int(port)):
        port = str(devstack.free_port())
    api_env = {**env, "PRIVACY_API_PORT": port}
    url = f"http://{settings.privacy_api.host}:{port}"
    with ExitStack() as running:
        api = start_service(api_env, "gdpr.api", log_dir)
        running.callback(stop_service, api)
        privacy.wait_ready(url, api, log_dir)
        request_id, secret = privacy.file_request(url, address, "access")
        code = privacy.code_from_mail(mail_dir, address)
        privacy.verify(url, request_id, secret, code)
        command(api_env, "gdpr.process_privacy_requests")
        privacy.download_once(url, request_id, secret)


def run_steps(env: Mapping[str, str], users: int, events: int, log_dir: Path, mail_dir: Path) -> None:
    """Every step after the stack's start, with the scheduler running for all of them."""
    with ExitStack() as running:
        banner(
            "2. the scheduler: the periodic jobs on time; on start, each job whose due time passed runs once;"
            " the live dashboard and the analysts' API"
        )
        scheduler = start_service(env, "scheduler", log_dir)
        running.callback(stop_service, scheduler)
        dashboard = start_dashboard(env, log_dir)
        running.callback(stop_service, dashboard)
        analysts_api = start_analysts_api(env, log_dir)
        running.callback(stop_service, analysts_api)
        pipeline_steps(env, users, events, log_dir, mail_dir)
        banner("10. what the scheduler ran, then it stops")
        command(env, "scheduler", "status", "--runs", "1")
        stop_service(scheduler)
        print(f"scheduler stopped (exit status {scheduler.returncode}): SIGTERM lets a running job record its outcome")


def pipeline_steps(env: Mapping[str, str], users: int, events: int, log_dir: Path, mail_dir: Path) -> None:
    """Steps 3-9: users, events through both consumers, batch, privacy requests, reports."""
    started = datetime.now(UTC)
    settings = load_settings(env)

    banner(f"3. {users:,} users")
    command(
        env, "data_generators.generate_users", "--count", str(users), "--consent-share", str(CONSENT_SHARE),
        "--signup-days", str(DEMO_DAYS),
    )  # fmt: skip

    with ExitStack() as running:
        banner(f"4. both consumers, the HTTP collector and the generator, {events:,} events (CONSENT_MODE=required)")
        consumers = [start_service(env, m, log_dir) for m in ("consumers.store_raw_events", "consumers.streaming_metrics")]
        for process in consumers:
            running.callback(stop_service, process)
        # The key first: the collector reads the keys as it starts, and a key made after that is
        # known only at its next reload (COLLECTOR_KEY_REFRESH_S), which a fast machine beat.
        key = create_write_key(env)
        collector = start_service(env, "collector", log_dir)
        running.callback(stop_service, collector)
        url = f"http://{settings.collector.host}:{settings.collector.port}"
        wait_for_collector(url, collector, log_dir)
        http_events = min(HTTP_EVENTS, events // 10)
        # Twelve weeks of history: a trend, a previous day to compare with, filled signup cohorts.
        command(
            env, "data_generators.generate_events", "--rate", "0", "--count", str(events - http_events),
            "--backfill-days", str(DEMO_DAYS), "--behaviour", "shoppers",
        )  # fmt: skip
        print(f"(the write key is shown masked here: {mask_key(key)})")
        command(
            env, "data_generators.generate_events", "--rate", "0", "--count", str(http_events), "--via-http", url, "--key", key,
            "--behaviour", "shoppers",
            shown=("--key", mask_key(key)),
        )  # fmt: skip
        withdraw_consent(settings, url, key)
        wait_for_consumers(settings, consumers, log_dir)

    days = [day.isoformat() for day in days_written_since(settings, started)]
    banner("5. batch job, Lambda reconciliation, RFM scores and lifetime values")
    if days:
        command(env, "batch.batch_metrics", "--from", days[0], "--to", days[-1])
        command(env, "batch.compare_batch_vs_stream", "--from", days[0], "--to", days[-1])
        # The nightly analytics job's steps, now rather than at 00:45: the report shows the RFM
        # segments and the lifetime values they store (a fit needs enough repeat buyers: else one line).
        command(env, "analytics.rfm", "--skip-if-too-few")
        command(env, "analytics.clv", "--skip-if-too-few")

    banner("6. privacy requests filed by an operator (SQL): erasure and access")
    emails = some_emails(settings, 5)
    requests = [(e, "erasure") for e in (emails[0], emails[1].upper())] + [(emails[2], "access")] if len(emails) >= 5 else []
    requests.append(("nobody@example.invalid", "erasure"))
    file_requests(settings, requests)
    print(
        f"inserted {len(requests)} rows into privacy_requests: two erasures (one email in upper case), "
        "one access request, one unknown email"
    )
    command(env, "gdpr.process_privacy_requests")
    if len(emails) >= 5:
        person_files_through_the_api(env, settings, log_dir, mail_dir, emails[3])
        banner("8. a DPO places a legal hold; the person's erasure waits on it")
        privacy.place_hold(env, emails[4])
        file_requests(settings, [(emails[4], "erasure")])
        command(env, "gdpr.process_privacy_requests")
        print("the DPO console shows the queue and each request's audit trail: python -m console (http://127.0.0.1:8002)")
    command(env, "gdpr.verify_audit")

    banner("9. reports")
    # The report releases its breakdown by country from a budget of its own (docs/privacy_releases.md).
    privacy.set_report_budget(env, settings.report_epsilon)
    # The last closed day (batch figures) and today (streaming figures); --from/--to for all.
    for day in days[-2:]:
        command(env, "reports.generate_daily_report", day)
    command(env, "reports.gdpr_audit_report")
    print(f"\nreport files are in {settings.reports_dir.resolve()}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the whole platform end to end on the embedded stack and print both reports.",
    )
    parser.add_argument("--users", type=int, default=10_000, help="users to seed (default: 10000)")
    parser.add_argument("--events", type=int, default=300_000, help="events to generate (default: 300000)")
    parser.add_argument("--keep-running", action="store_true", help="leave the embedded stack running at the end")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=devstack.DEFAULT_DATA_DIR,
        help="where the embedded stack keeps its data and the consumers' logs (default: .local/)",
    )
    args = parser.parse_args(argv)
    with one_line_errors():
        # Quiet unless asked: the demo's own output is the commands and what they print.
        setup_logging(config.log_level(default="WARNING"))
        demo(args.users, args.events, args.keep_running, args.data_dir)


if __name__ == "__main__":
    main()
