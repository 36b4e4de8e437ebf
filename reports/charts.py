"""Charts for the reports, drawn with matplotlib's object API into PNG bytes (no display needed).

Suppressed cells (see analytics.release) arrive as ``None`` and are left out of a chart rather
than drawn as zero; the chart says so.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter, StrMethodFormatter

from reports.render import Chart

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 3.2, 110
COLOURS = {"page_view": "#3e7cb1", "add_to_cart": "#f0a202", "purchase": "#2e933c"}
GREY = "#616e7c"
# Labels such as "10:00" or "2026-11-23" are meant as categories; matplotlib says so at INFO on
# every chart, which buried the report commands' own lines at LOG_LEVEL=INFO.
logging.getLogger("matplotlib.category").setLevel(logging.WARNING)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software metadata: it carries a URL, and the HTML report must not contain any.
    fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight")
    return buffer.getvalue()


def _figure() -> Figure:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    return fig


_THOUSANDS = StrMethodFormatter("{x:,.0f}")
FUNNEL_COLOURS = (COLOURS["page_view"], COLOURS["add_to_cart"], COLOURS["purchase"])


def _style(ax: Axes, *, value_axis: Literal["x", "y"] = "y") -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis=value_axis, alpha=0.3)
    (ax.yaxis if value_axis == "y" else ax.xaxis).set_major_formatter(_THOUSANDS)


def _note_suppressed(fig: Figure, any_suppressed: bool, k: int) -> None:
    if any_suppressed:
        fig.text(0.01, 0.01, f"gaps: cells of fewer than {k} users are suppressed", fontsize=8, color=GREY)


def events_per_hour(series: Mapping[str, Sequence[int | None]], k: int) -> Chart:
    """Events per UTC hour, one line per event type."""
    fig = _figure()
    ax = fig.add_subplot()
    hours = list(range(24))
    for kind, values in series.items():
        ax.plot(hours, [float("nan") if v is None else v for v in values], marker="o", markersize=3, label=kind,
                color=COLOURS.get(kind))  # fmt: skip
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("events")
    ax.legend(frameon=False, ncols=3, loc="upper left")
    _style(ax)
    _note_suppressed(fig, any(v is None for values in series.values() for v in values), k)
    return Chart("events_per_hour", "Events per hour by type", _png(fig))


def revenue_per_hour(values: Sequence[Decimal | None], k: int) -> Chart:
    """Revenue (EUR) per UTC hour."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar(range(24), [0.0 if v is None else float(v) for v in values], color=COLOURS["purchase"])
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("revenue (EUR)")
    _style(ax)
    _note_suppressed(fig, any(v is None for v in values), k)
    return Chart("revenue_per_hour", "Revenue per hour", _png(fig))


def funnel(
    steps: Sequence[tuple[str, int | None]],
    k: int,
    *,
    name: str = "funnel",
    title: str = "Conversion funnel (users)",
    unit: str = "users",
) -> Chart:
    """Users (or people: ``unit``) reaching each step, widest at the top, with the conversion from
    the step before."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [label for label, _n in steps][::-1]
    counts: list[int] = [0 if n is None else n for _label, n in steps][::-1]
    bars = ax.barh(labels, counts, color=list(FUNNEL_COLOURS[: len(labels)])[::-1])
    top = max([1, *counts])
    for i, (bar, (_label, n)) in enumerate(zip(bars, list(steps)[::-1], strict=True)):
        before = steps[len(steps) - i - 2][1] if i < len(steps) - 1 else None
        text = "suppressed" if n is None else f"{n:,}"
        if n is not None and before:
            text += f"  ({n / before:.1%} of the step before)"
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=9)
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel(unit)
    _style(ax, value_axis="x")
    _note_suppressed(fig, any(n is None for _label, n in steps), k)
    return Chart(name, title, _png(fig))


def rfm_segments(segments: Sequence[tuple[str, int | None, float | None]], k: int) -> Chart:
    """People per RFM segment (horizontal bars, in the model's order from the best), each with its
    mean value; a suppressed segment has no bar and says so."""
    fig = Figure(figsize=(WIDTH_IN, max(HEIGHT_IN, 0.6 + 0.28 * len(segments))), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    labels = [name for name, _n, _mean in segments][::-1]
    counts = [0 if n is None else n for _name, n, _mean in segments][::-1]
    bars = ax.barh(labels, counts, color=COLOURS["page_view"])
    top = max([1, *counts])
    for bar, (_name, n, mean) in zip(bars, list(segments)[::-1], strict=True):
        text = "suppressed" if n is None else f"{n:,}" + ("" if mean is None else f"  (mean value {mean:,.2f})")
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    ax.set_xlim(0, top * 1.5)
    ax.set_xlabel("people")
    ax.tick_params(axis="y", labelsize=8)
    _style(ax, value_axis="x")
    _note_suppressed(fig, any(n is None for _name, n, _mean in segments), k)
    return Chart("rfm_segments", "RFM segments (people)", _png(fig))


def clv_distribution(buckets: Sequence[tuple[str, int | None]], k: int, *, horizon_days: int) -> Chart:
    """Buyers per lifetime-value bucket (bars), a suppressed bucket left out."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [label for label, _n in buckets]
    counts = [0 if n is None else n for _label, n in buckets]
    bars = ax.bar(labels, counts, color=COLOURS["purchase"])
    for bar, (_label, n) in zip(bars, buckets, strict=True):
        text = "suppressed" if n is None else f"{n:,}"
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom", fontsize=8)
    ax.set_xlabel(f"expected value over the next {horizon_days} days (EUR)")
    ax.set_ylabel("buyers")
    _style(ax)
    _note_suppressed(fig, any(n is None for _label, n in buckets), k)
    return Chart("lifetime_value", "Customer lifetime value (buyers)", _png(fig))


# The heatmap's scale: white (nobody came back) to dark blue (everybody did).
HEATMAP_COLOURS = "Blues"
SUPPRESSED_CELL = "#d9dde3"


def retention_heatmap(rows: Sequence[tuple[str, Sequence[float | str | None]]], k: int) -> Chart:
    """Cohorts (rows, oldest first) by weeks since the cohort's own (columns): the share of the
    cohort active, as a colour with its percentage written in. None (a week that has not begun) is
    left blank; a string (a suppressed cell) is grey, marked with ``< k``."""
    weeks = max((len(cells) for _label, cells in rows), default=0)
    fig = Figure(figsize=(WIDTH_IN, max(HEIGHT_IN, 0.9 + 0.3 * len(rows))), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    shares = [[v if isinstance(v, float) else None for v in cells] for _label, cells in rows]
    matrix = [[float("nan") if v is None else v for v in line] + [float("nan")] * (weeks - len(line)) for line in shares]
    top = max([0.01, *(v for line in shares for v in line if v is not None)])
    image = ax.imshow(matrix, cmap=HEATMAP_COLOURS, vmin=0.0, vmax=top, aspect="auto")
    for r, (_label, cells) in enumerate(rows):
        for w, value in enumerate(cells):
            if isinstance(value, str):
                ax.add_patch(Rectangle((w - 0.5, r - 0.5), 1, 1, color=SUPPRESSED_CELL))
                ax.text(w, r, f"< {k}", ha="center", va="center", fontsize=7, color=GREY)
            elif value is not None:
                dark = value > top * 0.6
                ax.text(w, r, f"{value:.0%}", ha="center", va="center", fontsize=7, color="white" if dark else "#1f2933")
    ax.set_xticks(range(weeks), [str(w) for w in range(weeks)])
    ax.set_yticks(range(len(rows)), [label for label, _cells in rows])
    ax.tick_params(labelsize=8, length=0)
    ax.set_xlabel("weeks since the signup week")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, format=PercentFormatter(1.0, decimals=0))
    bar.ax.tick_params(labelsize=8)
    bar.set_label("share of the cohort active", fontsize=8)
    _note_suppressed(fig, any(isinstance(v, str) for _label, cells in rows for v in cells), k)
    return Chart("retention", "Retention by signup week (people)", _png(fig))


def daily_trend(days: Sequence[date], events: Sequence[int], revenue: Sequence[Decimal]) -> Chart:
    """Events (bars) and revenue (line, second axis) per day."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [d.strftime("%m-%d") for d in days]
    ax.bar(labels, events, color=COLOURS["page_view"], alpha=0.7, label="events")
    ax.set_ylabel("events")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    money = ax.twinx()
    money.plot(labels, [float(r) for r in revenue], color=COLOURS["purchase"], marker="o", markersize=3, label="revenue")
    money.set_ylabel("revenue (EUR)")
    money.set_ylim(bottom=0)
    money.yaxis.set_major_formatter(_THOUSANDS)
    _style(ax)
    money.spines["top"].set_visible(False)
    fig.legend(loc="outside upper left", ncols=2, frameon=False)
    return Chart("trend_14_days", f"Last {len(days)} days", _png(fig))


def _duration_unit(seconds: Sequence[float | None]) -> tuple[str, float]:
    """Seconds, minutes or hours, whichever reads best for the longest duration."""
    longest = max((s for s in seconds if s is not None), default=0.0)
    if longest < 120:
        return "seconds", 1.0
    if longest < 2 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0


def privacy_requests_over_time(
    days: Sequence[date], received: Mapping[str, Sequence[int]], p95_seconds: Sequence[float | None]
) -> Chart:
    """Requests received per day by type (bars) and the p95 processing time (line)."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [d.strftime("%m-%d") for d in days]
    bottom = [0] * len(days)
    palette = {"erasure": "#c0392b", "access": "#3e7cb1"}
    for kind, counts in received.items():
        ax.bar(labels, counts, bottom=bottom, label=f"{kind} requests", color=palette.get(kind, GREY))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_ylabel("requests received")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    unit, scale = _duration_unit(p95_seconds)
    times = ax.twinx()
    times.plot(labels, [float("nan") if s is None else s / scale for s in p95_seconds], color="#1f2933", marker="o",
               markersize=3, label="p95 processing time")  # fmt: skip
    times.set_ylabel(f"p95 processing ({unit})")
    times.set_ylim(bottom=0)
    _style(ax)
    times.spines["top"].set_visible(False)
    fig.legend(loc="outside upper left", ncols=3, frameon=False)
    return Chart("requests_over_time", "Privacy requests and processing time", _png(fig))
