"""LOG_FORMAT=json: every entry point logs one JSON object per line; a wrong value is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import PROJECT_ROOT

SCRIPT = """
import logging
from core import cli
cli.setup_logging("INFO")
logging.getLogger("consumers.example").info("stored %d events at offset %d", 3, 41)
try:
    raise ValueError("no such day")
except ValueError:
    logging.getLogger("batch.example").exception("the day failed")
"""


def run(code: list[str], log_format: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_FORMAT": log_format, "STACK_FILE": os.devnull}
    return subprocess.run(code, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_json_logs_are_one_object_per_line_with_the_message_formatted() -> None:
    done = run([sys.executable, "-c", SCRIPT], "json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("INFO", "consumers.example", "stored 3 events at offset 41"),
        ("ERROR", "batch.example", "the day failed"),
    ]
    assert records[0]["time"].endswith("+00:00") and "exception" not in records[0]
    assert "ValueError: no such day" in records[1]["exception"]


def test_text_stays_the_default_format() -> None:
    done = run([sys.executable, "-c", SCRIPT], "text")
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.endswith("INFO consumers.example: stored 3 events at offset 41")


def test_an_unknown_format_is_one_line_naming_the_choices() -> None:
    done = run([sys.executable, "-m", "core.partitions"], "xml")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: LOG_FORMAT='xml' is not one of text, json"
