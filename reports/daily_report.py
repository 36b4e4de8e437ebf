"""Daily business report: KPIs with their change, funnel, countries, charts, batch vs streaming.

``python -m reports.generate_daily_report [YYYY-MM-DD | --from D --to D] [--format md,html,json]``
prints the Markdown on the console and writes ``REPORTS_DIR/business_report_YYYY-MM-DD.{md,html,json}``
(the Markdown with its charts as PNG files beside it; the HTML self-contained).

Headline figures come from the batch metrics for a closed day the batch job has run for, from
the streaming metrics otherwise (today); the report says which. Breakdowns by people (unique
users, funnel, hours, countries) come from ``events_raw`` and ``users_public``, never from
personal data, and any cell describing fewer than k users (default 5) is suppressed. The people
analyses (retention by signup week as a heatmap, the ordered funnel by country) are those of
``analytics`` (analytics.cohorts, analytics.funnels) over its per-person-day summaries, released
under the same k-rule (analytics.release); a day without summaries says so in one line. The RFM
segments and the lifetime-value distribution are those of the stored scores (analytics.scoring, as
the last ``python -m analytics.rfm`` / ``analytics.clv`` left them), never a new scoring; without
any, one line says so. Events
the raw-events consumer dropped for lack of consent (``consent_dropped_daily``) are counted in
none of those figures; the report shows them per reason beside the totals, with CONSENT_MODE.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from analytics import cohorts, dp, funnels, release, scoring
from batch.reconcile import Comparison
from core import cli, db
from core.config import Settings
from reports import business, charts
from reports.business import Analyses, BusinessFigures, CustomerScores, DayKpis
from reports.render import Document, Section, Table, render_markdown, write_document

logger = logging.getLogger(__name__)

FUNNEL_STEPS = ("viewed a product", "added to cart", "purchased")
# What each CONSENT_MODE means for the figures, in the report's words.
CONSENT_MODES = {
    "required": "an event counts only if its user had analytics consent at its time",
    "assumed": "users without a consent record count; withdrawals and erasures apply",
}


# A cell is a figure, None (nothing to compute it from, e.g. no purchases) or SUPPRESSED.
Figure = int | Decimal | str | None
SUPPRESSED = release.SUPPRESSED


def _change(now: Figure, before: Figure) -> str:
    """Relative change of a KPI (KPIs are day totals, never suppressed)."""
    if not isinstance(now, int | Decimal) or not isinstance(before, int | Decimal) or before == 0:
        return "n/a"
    return f"{(Decimal(now) - Decimal(before)) / Decimal(before) * 100:+.1f} %"


def kpi_values(kpis: DayKpis) -> dict[str, Figure]:
    """The headline KPIs of a day. Day totals are not breakdowns: small-cell protection applies
    to the funnel, the hours and the countries."""
    return {
        "events": kpis.events,
        "unique users": kpis.users,
        "purchases": kpis.purchases,
        "revenue (EUR)": kpis.revenue,
        "average order value (EUR)": kpis.average_order_value,
    }


def _shown(value: Figure, k: int) -> str:
    if value is None:
        return "n/a"
    if value == SUPPRESSED:
        return release.marker(k)
    return f"{value:,.2f}" if isinstance(value, Decimal) else f"{value:,}"


def _versus(now: Figure, before: Figure, what: str) -> str:
    change = _change(now, before)
    return "" if change == "n/a" else f" ({change} vs {what})"


def funnel_values(kpis: DayKpis, k: int) -> list[tuple[str, int | str]]:
    hidden = release.suppressed_cells(dict(zip(FUNNEL_STEPS, kpis.funnel, strict=True)), k)
    return [(step, SUPPRESSED if step in hidden else n) for step, n in zip(FUNNEL_STEPS, kpis.funnel, strict=True)]


def _counts(values: list[tuple[str, int | str]]) -> list[tuple[str, int | None]]:
    return [(label, n if isinstance(n, int) else None) for label, n in values]


def country_rows(figures: BusinessFigures, k: int) -> list[dict[str, Any]]:
    """Per country: users and revenue, each suppressed below k (revenue: below k buyers)."""
    rows = figures.countries
    hidden_users = release.suppressed_cells({r.country: r.users for r in rows}, k)
    hidden_revenue = release.suppressed_cells({r.country: r.purchasers for r in rows}, k)
    total_revenue = sum((r.revenue for r in rows), Decimal(0))
    return [
        {
            "country": r.country,
            "users": SUPPRESSED if r.country in hidden_users else r.users,
            "purchases": SUPPRESSED if r.country in hidden_revenue else r.purchases,
            "revenue": SUPPRESSED if r.country in hidden_revenue else r.revenue,
            "revenue_share": None if r.country in hidden_revenue or not total_revenue else r.revenue / total_revenue,
        }
        for r in rows
    ]


def dp_country_rows(released: dp.Release, day: date) -> list[dict[str, Any]]:
    """Per public country (RELEASE_COUNTRIES): people, purchases and revenue as released with
    differential privacy, each with its 95 % interval; most people first (post-processing)."""
    rows = [
        {
            "country": country,
            **{
                kpi: {"value": figure.value, "plus_minus": figure.half_width}
                for kpi, figure in released.cells[(d, country)].items()
                if kpi in ("people", "purchases", "revenue")
            },
        }
        for (d, country) in released.cells
        if d == day
    ]
    return sorted(rows, key=lambda r: (-r["people"]["value"], r["country"]))


def _plus_minus(figure: dict[str, float], places: int) -> str:
    return f"{figure['value']:,.{places}f} ± {figure['plus_minus']:,.{places}f}"


def hourly_values(figures: BusinessFigures, k: int) -> tuple[dict[str, list[int | None]], list[Decimal | None]]:
    """Events per hour per type and revenue per hour, suppressed where fewer than k users."""
    events: dict[str, list[int | None]] = {}
    for kind, cells in figures.hourly.items():
        hidden = release.suppressed_cells({hour: cell.users for hour, cell in enumerate(cells)}, k)
        events[kind] = [None if hour in hidden else cell.events for hour, cell in enumerate(cells)]
    hidden_revenue = release.suppressed_cells({hour: buyers for hour, (_r, buyers) in enumerate(figures.hourly_revenue)}, k)
    revenue = [None if hour in hidden_revenue else amount for hour, (amount, _b) in enumerate(figures.hourly_revenue)]
    return events, revenue


RETENTION_TITLE = "Retention by signup week (people)"
ORDERED_FUNNEL_TITLE = "Ordered funnel (people)"
ORDERED_STEPS = ("viewed a page", "then added to cart", "then purchased")


def _report_marks(value: Any, k: int) -> Any:
    """An analysis as published (analytics.release marks a hidden cell with its marker) in the
    report's JSON, which marks every hidden cell alike: SUPPRESSED."""
    if value == release.marker(k):
        return SUPPRESSED
    if isinstance(value, dict):
        return {key: _report_marks(v, k) for key, v in value.items()}
    if isinstance(value, list):
        return [_report_marks(v, k) for v in value]
    return value


def retention_values(analyses: Analyses, k: int) -> dict[str, Any] | None:
    """The retention table as analytics.cohorts publishes it (future cells None), hidden cells
    SUPPRESSED; None when the day has no summaries."""
    if analyses.retention is None:
        return None
    published: dict[str, Any] = _report_marks(cohorts.publishable(analyses.retention, k), k)
    return published


def ordered_funnel_values(analyses: Analyses, k: int) -> dict[str, Any] | None:
    """The day's ordered funnel as analytics.funnels publishes it: every country together, and
    per country (small cells suppressed across the day's countries); None without summaries."""
    if analyses.funnel is None or analyses.funnel_by_country is None:
        return None
    together = funnels.publishable(analyses.funnel, k)
    by_country = funnels.publishable(analyses.funnel_by_country, k)
    values: dict[str, Any] = _report_marks(
        {
            "day": together["from"],
            "window_s": together["window_s"],
            "all": together["rows"][0] if together["rows"] else None,
            "by_country": by_country["rows"],
        },
        k,
    )
    return values


def _share(value: Any, k: int) -> str:
    """A share or rate as the report writes it: 12.5%, blank where there is none (a week not begun),
    the marker where suppressed."""
    if value is None:
        return ""
    return _shown(SUPPRESSED, k) if value == SUPPRESSED else f"{value:.1%}"


def _duration(value: Any, k: int) -> str:
    """A median time between steps: seconds under two minutes, minutes after."""
    if value is None:
        return ""
    if value == SUPPRESSED:
        return _shown(SUPPRESSED, k)
    return f"{value:,.0f} s" if value < 120 else f"{value / 60:,.1f} min"


def _analyses_line(analyses: Analyses) -> str:
    return analyses.missing or "No per-person summaries were read for this day."


def retention_section(analyses: Analyses, k: int) -> Section:
    """Weekly signup cohorts by weeks since: a heatmap (shares as colours, with the numbers) and
    its table; weeks not begun are blank, small cells suppressed."""
    values = retention_values(analyses, k)
    if values is None:
        return Section(RETENTION_TITLE, paragraphs=[_analyses_line(analyses)])
    weeks = values["weeks"]
    about = (
        f"Of the people who signed up in each of the last {business.RETENTION_COHORTS} weeks (Monday to Sunday, UTC), the"
        f" share active (any event) in each week since, as of {values['as_of']}. Weeks not begun are blank;"
        " from the per-person-day summaries (`python -m analytics.retention`)."
    )
    if not values["cohorts"]:
        return Section(RETENTION_TITLE, paragraphs=[about, "Nobody signed up in these weeks."])
    rows = [(c["week"], c["share"]) for c in values["cohorts"]]
    table = Table(
        ["signup week", "people", *(f"week {w}" for w in range(weeks + 1))],
        [(c["week"], _shown(c["size"], k), *(_share(s, k) for s in c["share"])) for c in values["cohorts"]],
    )
    return Section(RETENTION_TITLE, paragraphs=[about], chart=charts.retention_heatmap(rows, k), table=table)


def ordered_funnel_section(analyses: Analyses, k: int) -> Section:
    """The day's ordered funnel of people: every country together (chart and first row), then by
    country; conversion rates and median times between steps."""
    values = ordered_funnel_values(analyses, k)
    if values is None:
        return Section(ORDERED_FUNNEL_TITLE, paragraphs=[analyses.funnel_refused or _analyses_line(analyses)])
    about = (
        f"People who viewed a page on {values['day']}; of them, who then added to the cart, and then purchased, in that"
        f" order within {values['window_s'] / 60:g} minutes of the page view (ANALYTICS_FUNNEL_WINDOW_S) on its UTC day,"
        " with the median time between steps (`python -m analytics.funnel`)."
    )
    together = values["all"]
    if together is None:
        return Section(ORDERED_FUNNEL_TITLE, paragraphs=[about, f"Nobody viewed a page on {values['day']}."])
    steps = [
        (label, n if isinstance(n, int) else None) for label, n in zip(ORDERED_STEPS, together["people"].values(), strict=True)
    ]

    def line(name: str, row: dict[str, Any]) -> tuple[str, ...]:
        people = row["people"]
        return (
            name,
            *(_shown(people[step], k) for step in funnels.STEPS),
            _share(row["rate_view_to_cart"], k),
            _share(row["rate_cart_to_purchase"], k),
            _share(row["rate_view_to_purchase"], k),
            _duration(row["median_view_to_cart_s"], k),
            _duration(row["median_cart_to_purchase_s"], k),
        )

    table = Table(
        ["country", "viewed", "then carted", "then bought", "view > cart", "cart > buy", "view > buy",
         "median view > cart", "median cart > buy"],
        [line("all countries", together), *(line(row["country"], row) for row in values["by_country"])],
    )  # fmt: skip
    chart = charts.funnel(steps, k, name="ordered_funnel", title=ORDERED_FUNNEL_TITLE, unit="people")
    return Section(ORDERED_FUNNEL_TITLE, paragraphs=[about], chart=chart, table=table)


RFM_TITLE = "RFM segments (people)"
CLV_TITLE = "Customer lifetime value (buyers)"
NO_RFM = (
    "No RFM scores are stored yet: `python -m analytics.rfm` scores every buyer (the scheduler's nightly"
    " analytics job runs it after the batch)."
)
NO_CLV = (
    "No lifetime values are stored yet: `python -m analytics.clv` fits them (the scheduler's nightly analytics"
    " job runs it after the batch) once enough buyers have come back to fit the models."
)


def _hidden(value: Any) -> Any:
    """A figure of a summary, SUPPRESSED where the k-rule hid it (None)."""
    return SUPPRESSED if value is None else value


def _count_of_all(n: int, k: int) -> int | str:
    """How many people were scored: not even that leaves when fewer than k (but some) were."""
    return SUPPRESSED if 0 < n < k else n


def rfm_values(scores: CustomerScores, k: int) -> dict[str, Any] | None:
    """The stored RFM scoring's segment table as analytics.rfm_model's segment_summary gives it
    (people, total and mean value per segment, k-rule applied), hidden cells SUPPRESSED; None
    while no scores are stored."""
    if scores.rfm is None:
        return None
    return {
        "as_of": scores.rfm.as_of,
        "people": _count_of_all(scores.rfm.people, k),
        "segments": [
            {
                "segment": s.segment,
                "people": _hidden(s.people),
                "total_value": _hidden(scoring.money(s.total_value)),
                "mean_value": None if s.people == 0 else _hidden(scoring.money(s.mean_value)),
            }
            for s in scores.rfm.segments(k=k)
        ],
    }


def _bucket_label(low: float, high: float | None) -> str:
    return f"{low:,.0f}+" if high is None else f"{low:,.0f}-{high:,.0f}"


def clv_values(scores: CustomerScores, k: int) -> dict[str, Any] | None:
    """The stored lifetime values' distribution as analytics.scoring's clv_distribution gives it
    (buyers, total and mean CLV per bucket, k-rule applied) and the fit that made them (parameters
    with 95 % intervals, and what they mean); None while no lifetime values are stored."""
    stored = scores.clv
    if stored is None:
        return None
    d = stored.distribution(k=k)
    return {
        "fit_id": stored.fit_id,
        "as_of": stored.as_of,
        "horizon_days": stored.horizon_days,
        "buyers": _count_of_all(stored.people, k),
        "repeat_buyers": _count_of_all(stored.repeat_buyers, k),
        "parameters": {name: {"value": v, "low": low, "high": high} for name, (v, low, high) in stored.parameters.items()},
        "derived": scoring.derived(stored.parameters),
        "clv": {
            "people": _hidden(d.people),
            "total": _hidden(scoring.money(d.total)),
            "mean": _hidden(scoring.money(d.mean)),
            "buckets": [
                {
                    "low": b.low,
                    "high": b.high,
                    "people": _hidden(b.people),
                    "total": _hidden(scoring.money(b.total)),
                    "mean": None if b.people == 0 else _hidden(scoring.money(b.mean)),
                }
                for b in d.buckets
            ],
        },
    }


def _of(part: int | str, whole: int | str) -> float | str | None:
    """A segment's share of everybody scored: SUPPRESSED where the segment is hidden."""
    if part == SUPPRESSED:
        return SUPPRESSED
    return part / whole if isinstance(part, int) and isinstance(whole, int) and whole else None


def _money_cell(value: Any, k: int) -> str:
    if value is None:
        return ""
    return _shown(SUPPRESSED, k) if value == SUPPRESSED else f"{value:,.2f}"


def rfm_section(scores: CustomerScores, k: int) -> Section:
    """Each RFM segment's people and value, from the stored scores: a bar chart and its table."""
    values = rfm_values(scores, k)
    if values is None:
        return Section(RFM_TITLE, paragraphs=[NO_RFM])
    people = values["people"]
    about = (
        f"Every buyer scored 1-5 on recency, frequency and monetary value and placed in a segment by recency and"
        f" frequency, as of {values['as_of']} ({_shown(people, k)} buyers; the stored scores of `python -m analytics.rfm`;"
        " docs/analytics.md explains the segments). Value: what the segment's people spent, in EUR."
    )
    rows = values["segments"]
    table = Table(
        ["segment", "people", "share", "total value (EUR)", "mean value (EUR)"],
        [
            (
                s["segment"],
                _shown(s["people"], k),
                _share(_of(s["people"], people), k),
                _money_cell(s["total_value"], k),
                _money_cell(s["mean_value"], k),
            )
            for s in rows
        ],
    )
    chart_rows = [
        (
            s["segment"],
            s["people"] if isinstance(s["people"], int) else None,
            s["mean_value"] if isinstance(s["mean_value"], float) else None,
        )
        for s in rows
    ]
    return Section(RFM_TITLE, paragraphs=[about], chart=charts.rfm_segments(chart_rows, k), table=table)


def _interval(name: str, value: dict[str, float | None]) -> str:
    low, high = value["low"], value["high"]
    interval = "no interval" if low is None or high is None else f"{low:.4g}, {high:.4g}"
    return f"{name} = {value['value']:.4g} [{interval}]"


def clv_section(scores: CustomerScores, k: int) -> Section:
    """The lifetime values' distribution in buckets (chart and table) and the fit's parameters line."""
    values = clv_values(scores, k)
    if values is None:
        return Section(CLV_TITLE, paragraphs=[NO_CLV])
    d = values["derived"]
    about = (
        f"Each buyer's expected purchases over the next {values['horizon_days']} days (BG/NBD) times their expected"
        f" spend (Gamma-Gamma), undiscounted, from fit {values['fit_id']} as of {values['as_of']} on"
        f" {_shown(values['buyers'], k)} buyers, {_shown(values['repeat_buyers'], k)} of whom came back"
        " (the stored values of `python -m analytics.clv`)."
    )
    with_intervals = all(v["low"] is not None for v in values["parameters"].values())
    fit = (
        ("Fit (95 % intervals): " if with_intervals else "Fit (no 95 % intervals: the history cannot identify every parameter): ")
        + ", ".join(_interval(name, value) for name, value in values["parameters"].items())
        + f". A buyer makes {d['mean_purchase_rate_per_year']:.2f} purchase days a year while active, drops out after a"
        f" repeat purchase with chance {d['mean_dropout_chance_per_repeat_purchase']:.1%} and spends"
        f" {d['mean_purchase_value']:,.2f} EUR a purchase day."
    )
    clv = values["clv"]
    buckets = clv["buckets"]
    labels = [_bucket_label(b["low"], b["high"]) for b in buckets]
    table = Table(
        ["CLV (EUR)", "buyers", "total CLV (EUR)", "mean CLV (EUR)"],
        [
            *(
                (label, _shown(b["people"], k), _money_cell(b["total"], k), _money_cell(b["mean"], k))
                for label, b in zip(labels, buckets, strict=True)
            ),
            ("all", _shown(clv["people"], k), _money_cell(clv["total"], k), _money_cell(clv["mean"], k)),
        ],
    )
    chart = charts.clv_distribution(
        [(label, b["people"] if isinstance(b["people"], int) else None) for label, b in zip(labels, buckets, strict=True)],
        k,
        horizon_days=values["horizon_days"],
    )
    return Section(CLV_TITLE, paragraphs=[about, fit], chart=chart, table=table)


def _comparison_table(rows: list[Comparison]) -> Table:
    return Table(
        ["event type", "batch count", "streaming count", "count diff", "batch EUR", "streaming EUR", "EUR diff"],
        [
            (
                r.event_type,
                f"{r.batch_count:,}",
                f"{r.stream_count:,}",
                f"{r.count_diff:+,}",
                f"{r.batch_revenue:,.2f}",
                f"{r.stream_revenue:,.2f}",
                f"{r.revenue_diff:+,.2f}",
            )
            for r in rows
        ],
    )


# Restriction (Art. 18) and objection (Art. 21) act like a withdrawal: from their time on.
RETROACTIVE_NOTE = (
    ". A withdrawal, objection or restriction stops counting a person's events from its time on;"
    " nothing counted before it is excluded retroactively"
)


def consent_line(figures: BusinessFigures) -> str:
    """The day's events dropped for lack of consent, per reason, and the consent mode: beside
    the totals, which do not include them."""
    dropped = figures.consent_dropped
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in dropped.items())
    mode = figures.consent_mode
    mode_text = f"; consent mode: **{mode}** ({CONSENT_MODES.get(mode, 'see CONSENT_MODE')})" if mode else ""
    return (
        f"Events dropped for missing consent (not stored, not in any figure here): **{sum(dropped.values()):,}**"
        f"{' (' + reasons + ')' if reasons else ''}{mode_text}{RETROACTIVE_NOTE if mode else ''}"
    )


def _no_data_document(figures: BusinessFigures, latest: date | None) -> Document:
    hint = f" The most recent day with events is {latest.isoformat()}." if latest else " There are no events at all yet."
    return Document(
        f"Business report {figures.day.isoformat()}",
        [f"**No events were recorded for {figures.day.isoformat()}** (UTC).{hint}", consent_line(figures)],
        [Section("Batch vs streaming per event type", table=_comparison_table(figures.comparison))],
    )


def build_document(
    figures: BusinessFigures, k: int, latest: date | None = None, released: dp.Release | None = None, withheld: str | None = None
) -> Document:
    """The report as a Document (rendered to Markdown and HTML); the breakdown by country from
    ``released`` (differential privacy) when given, under the k-rule otherwise."""
    if not figures.has_data:
        return _no_data_document(figures, latest)
    day = figures.day
    today, previous, last_week = (kpi_values(x) for x in (figures.kpis, figures.previous_day, figures.same_weekday_last_week))
    agrees = all(r.agrees for r in figures.comparison)
    dead = sum(figures.dead_letters.values())
    bullets = [
        f"Figures from: **{figures.kpis.source}** ({figures.source_reason})",
        f"Events: **{_shown(today['events'], k)}**{_versus(today['events'], previous['events'], 'previous day')}",
        consent_line(figures),
        f"Unique users: **{_shown(today['unique users'], k)}**",
        f"Purchases: **{_shown(today['purchases'], k)}**",
        f"Revenue: **{_shown(today['revenue (EUR)'], k)} EUR**"
        f"{_versus(today['revenue (EUR)'], previous['revenue (EUR)'], 'previous day')}",
        f"Average order value: **{_shown(today['average order value (EUR)'], k)} EUR**",
        f"Batch vs streaming: **{'agree exactly' if agrees else 'DIFFER'}**",
        f"Events rejected at ingest (dead letters received this day): **{dead:,}**",
    ]
    kpi_table = Table(
        ["KPI", day.isoformat(), "previous day", "change", "same weekday last week", "change"],
        [
            (name, _shown(value, k), _shown(previous[name], k), _change(value, previous[name]),
             _shown(last_week[name], k), _change(value, last_week[name]))
            for name, value in today.items()
        ],
    )  # fmt: skip
    funnel = _counts(funnel_values(figures.kpis, k))
    first = funnel[0][1]
    funnel_table = Table(
        ["step", "users", "of the step before", "of all viewers"],
        [
            (
                step,
                _shown(SUPPRESSED if n is None else n, k),
                "" if i == 0 or n is None or not (before := funnel[i - 1][1]) else f"{n / before:.1%}",
                "" if n is None or not first else f"{n / first:.1%}",
            )
            for i, (step, n) in enumerate(funnel)
        ],
    )
    country_section = _country_section(figures, k, released, withheld)
    hourly_events, hourly_revenue = hourly_values(figures, k)
    trend = figures.trend
    sections = [
        Section("Key figures compared", table=kpi_table),
        Section("Events per hour by type", chart=charts.events_per_hour(hourly_events, k)),
        Section("Revenue per hour", chart=charts.revenue_per_hour(hourly_revenue, k)),
        Section(
            "Conversion funnel (users)",
            paragraphs=["Users who viewed a product; of them, who added to cart; of them, who purchased (UTC day)."],
            chart=charts.funnel(funnel, k),
            table=funnel_table,
        ),
        country_section,
        Section(
            f"Last {len(trend)} days",
            paragraphs=["Batch metrics for closed days the batch job has covered, streaming metrics otherwise."],
            chart=charts.daily_trend([t.day for t in trend], [t.events for t in trend], [t.revenue for t in trend]),
        ),
        ordered_funnel_section(figures.analyses, k),
        retention_section(figures.analyses, k),
        rfm_section(figures.scores, k),
        clv_section(figures.scores, k),
        Section(
            "Batch vs streaming per event type",
            paragraphs=[f"Headline figures above come from the **{figures.kpis.source}** metrics."],
            table=_comparison_table(figures.comparison),
        ),
    ]
    footer = (
        f"Small-cell protection: any breakdown cell describing fewer than {k} users is shown as "
        f"'{release.marker(k)}', and further cells are hidden until the hidden ones together describe at "
        f"least {k} users, so no total gives them back."
    )
    return Document(f"Business report {day.isoformat()}", bullets, sections, footer)


def _country_section(figures: BusinessFigures, k: int, released: dp.Release | None, withheld: str | None = None) -> Section:
    """The breakdown by country: released with differential privacy (each figure +- its 95 %
    interval, every public country), under the k-rule where the DPO allowed it, or withheld
    (``withheld``: why) when the release's budget cannot pay for it."""
    if withheld is not None:
        return Section("People, purchases and revenue by country (withheld)", paragraphs=[f"Not released: {withheld}."])
    if released is not None:
        rows = dp_country_rows(released, figures.day)
        return Section(
            "People, purchases and revenue by country (differential privacy)",
            paragraphs=[
                f"Released with differential privacy (OpenDP, epsilon {released.epsilon:g} from the budget"
                f" `{released.analyst}`, ledger row {released.ledger_id}): each figure is noisy and shown with its 95 %"
                " interval (± x); every country of RELEASE_COUNTRIES is listed, whoever was active."
                " Country from `users_public`; people with their day's figures clamped (docs/privacy_releases.md)."
            ],
            table=Table(
                ["country", "people", "purchases", "revenue (EUR)"],
                [
                    (r["country"], _plus_minus(r["people"], 0), _plus_minus(r["purchases"], 0), _plus_minus(r["revenue"], 2))
                    for r in rows
                ],
            ),
        )
    countries = country_rows(figures, k)
    return Section(
        "Revenue and users by country",
        paragraphs=["Country from `users_public` (never from personal data); `unknown`: events of erased people."],
        table=Table(
            ["country", "users", "purchases", "revenue (EUR)", "share of revenue"],
            [
                (
                    c["country"],
                    _shown(c["users"], k),
                    _shown(c["purchases"], k),
                    _shown(c["revenue"], k),
                    "" if c["revenue_share"] is None else f"{c['revenue_share']:.1%}",
                )
                for c in countries
            ],
        ),
    )


def build_data(
    figures: BusinessFigures, k: int, released: dp.Release | None = None, withheld: str | None = None
) -> dict[str, Any]:
    """The figures for the JSON file, with the same suppression (null + a flag) as the pages, and
    the by-country release (figures with intervals, its declaration) when made with DP."""

    def kpis(x: DayKpis) -> dict[str, Any]:
        return {"day": x.day, "source": x.source, **{name.split(" (")[0]: v for name, v in kpi_values(x).items()}}

    hourly_events, hourly_revenue = hourly_values(figures, k)
    return {
        "report": "business",
        "day": figures.day,
        "generated_at": datetime.now(UTC),
        "has_data": figures.has_data,
        "source": figures.kpis.source,
        "source_reason": figures.source_reason,
        "min_cell_users": k,
        "kpis": kpis(figures.kpis),
        "previous_day": kpis(figures.previous_day),
        "same_weekday_last_week": kpis(figures.same_weekday_last_week),
        "funnel": [{"step": step, "users": n} for step, n in funnel_values(figures.kpis, k)],
        "countries": None
        if withheld is not None
        else (country_rows(figures, k) if released is None else dp_country_rows(released, figures.day)),
        "countries_withheld": withheld,
        "countries_release": None
        if released is None
        else {"ledger_id": released.ledger_id, "budget": released.analyst, **released.declaration},
        "events_per_hour": {kind: [SUPPRESSED if v is None else v for v in values] for kind, values in hourly_events.items()},
        "revenue_per_hour": [SUPPRESSED if v is None else v for v in hourly_revenue],
        "trend": [asdict(t) for t in figures.trend],
        "analyses_note": figures.analyses.missing or figures.analyses.funnel_refused,
        "ordered_funnel": ordered_funnel_values(figures.analyses, k),
        "retention": retention_values(figures.analyses, k),
        "rfm_segments": rfm_values(figures.scores, k),
        "rfm_note": None if figures.scores.rfm else NO_RFM,
        "lifetime_value": clv_values(figures.scores, k),
        "lifetime_value_note": None if figures.scores.clv else NO_CLV,
        "batch_vs_streaming": [{**asdict(r), "agrees": r.agrees} for r in figures.comparison],
        "dead_letters": figures.dead_letters,
        "consent": {
            "mode": figures.consent_mode,
            "consumer_group": figures.consent_group,
            "dropped_events": sum(figures.consent_dropped.values()),
            "dropped_by_reason": figures.consent_dropped,
        },
    }


def generate(settings: Settings, day: date, formats: list[str], k: int) -> tuple[str, list[Path]]:
    """Collect, render and write the report for ``day``; return the Markdown and the files."""
    with db.connection(settings.database, application_name="daily_report", role=db.ANALYTICS_ROLE) as conn:
        figures = business.collect(
            conn,
            day,
            cli.today_utc(),
            consent_group=settings.groups.raw_events,
            funnel_window_s=settings.analytics_funnel_window_s,
            consent_mode=settings.consent_mode,
        )
        latest = None if figures.has_data else business.latest_day_with_events(conn)
        released, withheld = None, None
        if figures.has_data and settings.report_release_mode == "dp":
            try:
                released = business.release_countries(conn, day, epsilon=settings.report_epsilon, bounds=settings.release)
            except business.ReportBudgetMissing as e:
                # The design's report (totals, batch vs streaming) is still written; only the
                # breakdown that needs the budget is withheld, and the log says why.
                withheld = str(e)
                logger.warning("daily report %s: the by-country breakdown is withheld: %s", day, withheld)
    doc = build_document(figures, k, latest, released, withheld)
    stem = f"business_report_{day.isoformat()}"
    files = write_document(settings.reports_dir, stem, doc, build_data(figures, k, released, withheld), formats)
    return render_markdown(doc, stem), files
