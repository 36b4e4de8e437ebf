"""Small rendering helpers shared by the reports: Markdown tables and writing report files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table: first column left-aligned, figures right-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(directory: Path, filename: str, text: str) -> Path:
    """Write ``text`` to ``directory/filename`` atomically (a reader never sees half a report)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    partial = target.with_suffix(target.suffix + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target
