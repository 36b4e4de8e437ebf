"""Running a job's command: its exit status and last line become the run's one-line record; a stop
or a timeout stops the command and says so. (Small Python children, no services.)"""

from __future__ import annotations

import sys
import threading

import pytest
from prometheus_client import REGISTRY

from core.metrics import record_reconciliation
from scheduler.runner import Exited, describe_exception, describe_failure, drifting_days, run_process
from scheduler.runs import one_line


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_command_that_succeeds_passes_its_output_on() -> None:
    exited = run_process(python("print('recomputed 2 days')"), threading.Event(), timeout_s=60)
    assert exited == Exited(0, "recomputed 2 days", None)


def test_a_failing_command_is_its_exit_status_and_its_last_line_on_stderr() -> None:
    code = "import sys; print('a table for people'); sys.stderr.write('INFO working\\nerror: PostgreSQL refused\\n'); sys.exit(2)"
    exited = run_process(python(code), threading.Event(), timeout_s=60)
    assert (exited.returncode, exited.last_line, exited.stopped) == (2, "error: PostgreSQL refused", None)
    assert describe_failure("reports.generate_daily_report", exited) == (
        "reports.generate_daily_report exited with status 2: error: PostgreSQL refused"
    )


def test_without_a_line_on_stderr_the_last_line_on_stdout_says_what_happened() -> None:
    code = "import sys; print('drift on 1 day(s): 2026-11-22'); sys.exit(1)"
    exited = run_process(python(code), threading.Event(), timeout_s=60)
    assert describe_failure("batch.compare_batch_vs_stream", exited) == (
        "batch.compare_batch_vs_stream exited with status 1: drift on 1 day(s): 2026-11-22"
    )


def test_a_stop_stops_the_running_command_and_says_why() -> None:
    stop = threading.Event()
    stop.set()  # as SIGTERM would while the command runs
    exited = run_process(python("import time; print('started', flush=True); time.sleep(120)"), stop, timeout_s=600)
    assert exited.stopped == "the scheduler was stopped" and exited.returncode != 0
    assert describe_failure("gdpr.retention", exited).startswith("gdpr.retention was stopped because the scheduler was stopped")


def test_a_command_past_its_timeout_is_stopped() -> None:
    exited = run_process(python("import time; time.sleep(120)"), threading.Event(), timeout_s=0.5)
    assert exited.stopped == "it ran longer than 0.5 s"


def test_a_command_killed_by_a_signal_says_which() -> None:
    assert describe_failure("gdpr.retention", Exited(-9, None)) == "gdpr.retention was killed by SIGKILL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Traceback (most recent call last):\n  File ...\nValueError: x",
            "Traceback (most recent call last): File ... ValueError: x",
        ),
        ("  tab\there\r\n", "tab here"),
        (None, None),
    ],
)
def test_what_is_recorded_is_one_line(text: str | None, expected: str | None) -> None:
    assert one_line(text) == expected


def test_a_long_line_is_cut() -> None:
    line = one_line("x" * 2000)
    assert line is not None and len(line) == 500 and line.endswith("...")


def test_an_exception_of_the_in_process_check_quotes_no_data() -> None:
    assert describe_exception(KeyError("jane@example.org")) == "KeyError"


def test_the_drift_the_comparison_reports_becomes_the_reconciliation_gauge() -> None:
    assert drifting_days(Exited(0, "OK: agree exactly")) == 0
    assert drifting_days(Exited(1, "drift on 3 day(s): 2026-11-20, 2026-11-21, 2026-11-22")) == 3
    assert drifting_days(Exited(1, None)) == 1  # drift, count unknown: at least one day
    record_reconciliation(drifting_days(Exited(1, "drift on 2 day(s): 2026-11-21, 2026-11-22")))
    assert REGISTRY.get_sample_value("platform_reconciliation_drift_days") == 2
