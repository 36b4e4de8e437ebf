"""Helpers every entry point shares: logging set-up, date arguments and one-line errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.config import Settings, load_settings, log_format
from core.errors import PlatformError

logger = logging.getLogger(__name__)

# Ten years of days: a typo in a year should not start a run over centuries.
MAX_RANGE_DAYS = 3660


class JsonFormatter(logging.Formatter):
    """``LOG_FORMAT=json``: one JSON object per line, for log shippers: ``time`` (UTC, ISO 8601,
    milliseconds), ``level``, ``logger``, ``message`` (its arguments merged in), ``process``, and
    ``exception`` when there is one. The records are the same as in text: counts, ids, offsets and
    reasons, never personal data or payloads (the modules log nothing else)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once, for an entry point, in LOG_FORMAT (text or json)."""
    handler = logging.StreamHandler()
    if log_format() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler])


def today_utc() -> date:
    """The current date in UTC: every day in this platform is a UTC day."""
    return datetime.now(UTC).date()


def parse_day(text: str) -> date:
    """argparse type for YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from e


def add_day_argument(parser: argparse.ArgumentParser) -> None:
    """The optional positional day most commands take, defaulting to today in UTC."""
    parser.add_argument(
        "day",
        nargs="?",
        type=parse_day,
        default=None,
        help="the UTC day, YYYY-MM-DD (default: today in UTC)",
    )


def add_day_range_arguments(parser: argparse.ArgumentParser) -> None:
    """One day (positional, default today in UTC) or a range with --from/--to (inclusive)."""
    add_day_argument(parser)
    parser.add_argument("--from", dest="from_day", type=parse_day, help="first UTC day of a range, YYYY-MM-DD")
    parser.add_argument("--to", dest="to_day", type=parse_day, help="last UTC day of a range (default: today)")


def days_from_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[date]:
    """The days chosen by add_day_range_arguments' options; parser.error() on a contradiction."""
    if args.from_day is None and args.to_day is None:
        return [args.day or today_utc()]
    if args.day is not None:
        parser.error("give either a DAY or --from/--to, not both")
    first = args.from_day or args.to_day
    last = args.to_day or today_utc()
    if first > last:
        parser.error(f"--from {first} is after --to {last}")
    if (last - first).days > MAX_RANGE_DAYS:
        parser.error(f"a range may span at most {MAX_RANGE_DAYS} days")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def run(main: Callable[[Settings], int]) -> None:
    """Load settings, set up logging, run ``main`` and turn expected failures into one line.

    Exit status: what ``main`` returns; 2 for a platform error (bad input, service down);
    130 on Ctrl+C.
    """
    with one_line_errors():
        settings = load_settings()
        setup_logging(settings.log_level)
        logger.debug("settings: %s", settings.describe())
        code = main(settings)
    sys.exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """An expected failure as one line on stderr instead of a traceback: exit status 2 for a
    platform error (bad input, service down), 130 on Ctrl+C."""
    try:
        yield
    except PlatformError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def install_stop_handlers() -> threading.Event:
    """SIGINT/SIGTERM set the returned flag so a loop can finish its transaction and exit.

    A second signal exits at once: nothing is lost, as an uncommitted transaction is simply
    rolled back by PostgreSQL and redone from the stored offsets.
    """
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(130)
        logger.info("%s received: finishing the current batch, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


class Progress:
    """Progress lines for long work, at most one a second, on stderr (stdout keeps the results)."""

    def __init__(self, label: str, total: int | None = None, every_s: float = 1.0) -> None:
        self.label = label
        self.total = total
        self.every_s = every_s
        self.done = 0
        self.started = time.monotonic()
        self._next = self.started + every_s

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def advance(self, n: int, extra: str = "") -> None:
        self.done += n
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.every_s
            self.show(extra)

    def show(self, extra: str = "") -> None:
        of = f"/{self.total:,}" if self.total is not None else ""
        tail = f", {extra}" if extra else ""
        print(f"{self.label}: {self.done:,}{of} ({self.rate:,.0f}/s{tail})", file=sys.stderr, flush=True)


def add_format_argument(parser: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    """``--format md,html,json`` (default: all of ``formats``): which files a command writes."""

    def chosen_formats(text: str) -> list[str]:
        chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
        unknown = [part for part in chosen if part not in formats]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"formats are a comma-separated list of {', '.join(formats)}; got {text!r}")
        return chosen

    parser.add_argument(
        "--format",
        dest="formats",
        type=chosen_formats,
        default=list(formats),
        help=f"comma-separated files to write: {','.join(formats)} (default: all)",
    )


def print_written(files: Iterable[Path]) -> None:
    """Name the files a command wrote (a report's chart PNGs, embedded in its HTML, go without saying)."""
    for path in files:
        if path.suffix != ".png":
            print(f"written to {path}")
