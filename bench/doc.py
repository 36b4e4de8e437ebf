"""The generated part of ``docs/benchmarks.md``: each bench replaces its own block, between
``<!-- bench:<scale>:begin -->`` and ``<!-- bench:<scale>:end -->``, with its latest report (the
machine, the date and the commit it ran on), so the committed numbers are never copied by hand.
Everything outside the blocks is prose and is left as it is."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from core.config import PROJECT_ROOT

# The doc as git names it (left out of the "-dirty" check: an earlier bench of the same checkout
# has written it), and on disk.
DOC_IN_GIT = "docs/benchmarks.md"
DOC = PROJECT_ROOT / DOC_IN_GIT
# How many levels a report's own headings move down: the report's "# Benchmark" becomes a
# subsection of the doc's "## Latest runs".
HEADING_SHIFT = 2


class MissingBlock(ValueError):
    """The doc lacks a bench's markers (or has them more than once, or out of order): the bench
    will not guess where its numbers go."""


def markers(scale: str) -> tuple[str, str]:
    """The begin and end lines of ``scale``'s block."""
    return f"<!-- bench:{scale}:begin -->", f"<!-- bench:{scale}:end -->"


def commit_of(root: Path = PROJECT_ROOT) -> str:
    """The short commit the bench ran on, ``-dirty`` when tracked files other than the doc had
    changed since, or ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":!{DOC_IN_GIT}"],  # noqa: S607
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if changed else head


def block(scale: str, report: str, commit: str) -> str:
    """A report as the doc's block for ``scale``: its headings shifted under the doc's section,
    the commit beside it, between the markers."""
    begin, end = markers(scale)
    lines = [("#" * HEADING_SHIFT + line) if line.startswith("#") else line for line in report.strip().splitlines()]
    return "\n".join(
        [
            begin,
            *lines,
            "",
            f"Commit `{commit}`. Written by `make bench SCALE={scale}`; replaced by its next run.",
            end,
        ]
    )


def replace_block(text: str, scale: str, report: str, commit: str) -> str:
    """``text`` with ``scale``'s block replaced by ``report``; the rest of it unchanged. Raises
    MissingBlock when the markers are absent, repeated or out of order."""
    begin, end = markers(scale)
    pattern = re.compile(rf"^{re.escape(begin)}$.*?^{re.escape(end)}$", re.MULTILINE | re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1 or text.count(begin) != 1 or text.count(end) != 1:
        raise MissingBlock(
            f"the doc needs exactly one block for {scale!r}: a line {begin!r}, then a line {end!r} "
            f"(it has {text.count(begin)} and {text.count(end)}); add them where the {scale} results belong"
        )
    return pattern.sub(lambda _m: block(scale, report, commit), text, count=1)


def update(scale: str, report: str, doc: Path | None = None, commit: str | None = None) -> None:
    """Write ``report`` into ``doc``'s block for ``scale`` (DOC and the commit read from git if not
    given)."""
    doc = DOC if doc is None else doc
    try:
        text = doc.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise MissingBlock(f"{doc} does not exist: the bench writes its results into that doc's {scale!r} block") from e
    doc.write_text(replace_block(text, scale, report, commit_of() if commit is None else commit), encoding="utf-8")
