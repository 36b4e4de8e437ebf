"""Rendering shared by the reports: one document model written as Markdown, HTML and JSON.

A report is built once as a ``Document`` (headline bullets, sections with a table and/or a
chart) and rendered to each format asked for: Markdown links PNG files written beside it; HTML
embeds the same PNGs as base64 and has no external resources, so it opens offline and can be
mailed as one file; JSON carries the figures themselves for other tools.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

FORMATS = ("md", "html", "json")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Chart:
    """A rendered chart: ``name`` becomes part of the PNG's file name."""

    name: str
    title: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    chart: Chart | None = None


@dataclass
class Document:
    """Title, headline bullets (``**bold**`` allowed) and sections."""

    title: str
    bullets: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    footer: str = ""

    @property
    def charts(self) -> list[Chart]:
        return [s.chart for s in self.sections if s.chart is not None]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table: first column left-aligned, figures right-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def chart_filename(stem: str, chart: Chart) -> str:
    return f"{stem}_{chart.name}.png"


def render_markdown(doc: Document, stem: str | None = None) -> str:
    """Markdown; with ``stem``, each chart is an image link to ``<stem>_<chart>.png``."""
    lines = [f"# {doc.title}", ""]
    lines += [f"- {b}" for b in doc.bullets]
    for section in doc.sections:
        lines += ["", f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"- {b}" for b in section.bullets] + [""]
        if section.chart is not None and stem is not None:
            lines += [f"![{section.chart.title}]({chart_filename(stem, section.chart)})", ""]
        if section.table is not None:
            lines += [markdown_table(section.table.header, section.table.rows), ""]
    if doc.footer:
        lines += ["", doc.footer]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


def inline_markup(text: str) -> markupsafe.Markup:
    """Escape ``text`` for HTML, then turn ``**bold**`` into <strong> and ```code``` into <code>."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(_CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<strong>\1</strong>", escaped)))  # noqa: S704 - escaped above


def render_html(doc: Document) -> str:
    """One self-contained HTML page: inline CSS, charts as data URIs, no external resource."""
    template = _TEMPLATES.get_template("report.html.j2")
    return template.render(doc=doc, md=inline_markup)


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def render_json(data: dict[str, Any]) -> str:
    """Figures as JSON; money as decimal strings (exact), days as ISO dates."""
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False) + "\n"


def _write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    partial = target.with_name(target.name + ".partial")
    write(partial)
    partial.replace(target)
    return target


def _write_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def write_report(directory: Path, filename: str, text: str) -> Path:
    """Write ``text`` to ``directory/filename`` atomically (a reader never sees half a report)."""
    directory.mkdir(parents=True, exist_ok=True)
    return _write_atomically(directory / filename, lambda p: p.write_text(text, encoding="utf-8"))


def write_document(directory: Path, stem: str, doc: Document, data: dict[str, Any], formats: Sequence[str]) -> list[Path]:
    """Write the formats asked for as ``directory/<stem>.<format>``; Markdown gets its PNGs."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "md" in formats:
        for chart in doc.charts:
            written.append(_write_atomically(directory / chart_filename(stem, chart), functools.partial(_write_bytes, chart.png)))
        written.append(write_report(directory, f"{stem}.md", render_markdown(doc, stem)))
    if "html" in formats:
        written.append(write_report(directory, f"{stem}.html", render_html(doc)))
    if "json" in formats:
        written.append(write_report(directory, f"{stem}.json", render_json(data)))
    return written
