"""How the page writes each figure of the summary: the server's first render uses these, and the
page's script (templates/refresh.js) writes every refreshed figure the same way, function for
function (``count``, ``money``, ``pct``, ...), so a refresh never changes how a figure looks."""

from __future__ import annotations

from decimal import Decimal

UNKNOWN = "unknown"
# Shown where there is nothing to count or no base for a share.
DASH = "\N{EN DASH}"
# The throughput chart: one bar per minute in a box this many units high and wide per bar.
BAR_HEIGHT = 24
BAR_WIDTH = 10


def count(n: int | None) -> str:
    """12,345; a dash when there is nothing to count."""
    return DASH if n is None else f"{n:,}"


def people(value: int | str) -> str:
    """People at a funnel step, as count writes them; a suppressed cell's marker as it comes."""
    return value if isinstance(value, str) else count(value)


def duration(value: float | None) -> str:
    """A median time between steps: 42 s under two minutes, 5.2 min after; a dash without one."""
    if value is None:
        return DASH
    return f"{value:,.0f} s" if value < 120 else f"{value / 60:,.1f} min"


def money(amount: str) -> str:
    """An exact decimal string as 1,234.50 (the JSON's money is never a float)."""
    return f"{Decimal(amount):,.2f}"


def rate(per_s: float) -> str:
    """Events per second, one decimal: 1,204.3."""
    return f"{per_s:,.1f}"


def pct(share: float | None) -> str:
    """A percentage the summary rounded already (12.5 -> 12.5 %); a dash without a base."""
    return DASH if share is None else f"{share:.1f} %"


def seconds(value: float | None) -> str:
    """0.31 s; ``unknown`` when no batch told."""
    return UNKNOWN if value is None else f"{value:.2f} s"


def when(moment: str | None) -> str:
    """An ISO time of the summary (UTC) as 2026-11-23 10:00:05 UTC; ``never`` without one."""
    return "never" if moment is None else f"{moment[:10]} {moment[11:19]} UTC"


def finished(moment: str | None) -> str:
    """When a run finished, as ``when`` writes it; ``still running`` before it has."""
    return "still running" if moment is None else when(moment)


def lag(total: int | None) -> str:
    """Messages not yet stored; ``unknown`` when Kafka could not be asked."""
    return UNKNOWN if total is None else f"{total:,}"


def bars(series: list[int]) -> list[tuple[int, int]]:
    """(y, height) of each minute's bar in a BAR_HEIGHT-high box, the busiest minute full height;
    a minute with any event at least one unit high, so it never looks idle."""
    top = max(series, default=0)
    # Half a unit rounds up, as the script's Math.round does (Python's round() would round to even).
    heights = [0 if not top or not n else max(1, int(n * BAR_HEIGHT / top + 0.5)) for n in series]
    return [(BAR_HEIGHT - h, h) for h in heights]


def kinds(by_type: dict[str, int]) -> str:
    """Counts per request type, as the JSON orders them: access 2, erasure 1; a dash for none."""
    return ", ".join(f"{kind} {n:,}" for kind, n in by_type.items()) or DASH


def series(values: list[int]) -> str:
    """A throughput series read aloud (the chart's accessible name): 1,200; 1,340; 0."""
    return "; ".join(f"{n:,}" for n in values)
