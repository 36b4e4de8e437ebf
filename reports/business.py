"""The figures of the daily business report, read from PostgreSQL as the analytics role.

Headline counts and revenue come from the daily metrics: the batch metrics for a closed day the
batch job has run for (the source of truth), the streaming metrics for today or for a day the
batch job has not covered yet. Everything that needs people rather than totals (unique users,
the funnel, hours, countries) comes from ``events_raw`` joined to ``users_public``, never to
``users_pii``. Events the raw-events consumer dropped for lack of consent are in none of those:
they are read, per reason, from ``consent_dropped_daily``. The people analyses (retention by
signup week, the ordered funnel) are those of ``analytics``, read from its per-person-day
summaries for a day the batch job has closed, never from a scan of ``events_raw``; the RFM
segments and lifetime values are its stored scores (sql/039) as the last scoring left them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import psycopg2.errors
import psycopg2.extensions

from analytics import cohorts, dp, funnels, ledger, scoring, summaries
from batch.reconcile import Comparison, compare_in
from core import consent, db, locks
from core.config import ReleaseSettings
from core.events import EVENT_TYPES

TREND_DAYS = 14
CENT = Decimal("0.01")
UNKNOWN_COUNTRY = "unknown"
# The retention heatmap: the last 12 weekly signup cohorts, each over its own week and the 11 after
# (a quarter: long enough to see a cohort settle, short enough to read).
RETENTION_COHORTS = 12
# Snapshots taken again when a day moved out of events_raw's default partition under one (sql/047):
# a move waits for the transaction that holds the days, so a second attempt meets none.
SNAPSHOT_ATTEMPTS = 3


@dataclass(frozen=True)
class DayKpis:
    """One day's key figures."""

    day: date
    source: str  # "batch" or "streaming"
    events: int
    purchases: int
    revenue: Decimal
    users: int  # distinct users with any event
    purchasers: int  # distinct users with a purchase
    funnel: tuple[int, int, int]  # users who viewed; of them, added to cart; of them, purchased

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.purchases).quantize(CENT) if self.purchases else None


@dataclass(frozen=True)
class HourCell:
    events: int
    users: int


@dataclass(frozen=True)
class CountryRow:
    country: str
    users: int
    purchasers: int
    purchases: int
    revenue: Decimal


@dataclass(frozen=True)
class TrendDay:
    day: date
    source: str
    events: int
    revenue: Decimal


@dataclass(frozen=True)
class Analyses:
    """The people analyses of the report's day, from the per-person-day summaries (analytics/).
    ``missing`` says in one line why there are none (the day has no summaries); ``funnel_refused``
    why the funnel is not shown when the day was summarised with another conversion window."""

    retention: cohorts.Retention | None = None
    funnel: funnels.Funnel | None = None  # every country together
    funnel_by_country: funnels.Funnel | None = None
    missing: str | None = None
    funnel_refused: str | None = None


@dataclass(frozen=True)
class CustomerScores:
    """The stored per-person scorings (``python -m analytics.rfm``, ``python -m analytics.clv``, the
    scheduler's nightly analytics job), read as they are; None where none is stored yet."""

    rfm: scoring.StoredRfm | None = None
    clv: scoring.StoredClv | None = None


@dataclass(frozen=True)
class BusinessFigures:
    """Everything the daily business report shows."""

    day: date
    today: date
    kpis: DayKpis
    previous_day: DayKpis
    same_weekday_last_week: DayKpis
    comparison: list[Comparison]
    hourly: dict[str, list[HourCell]]  # event type -> 24 cells
    hourly_revenue: list[tuple[Decimal, int]]  # per hour: revenue, purchasers
    countries: list[CountryRow]
    trend: list[TrendDay]
    dead_letters: dict[str, int]
    # Events of the day the raw-events consumer dropped for lack of consent, per reason (both
    # reasons always present), and the CONSENT_MODE the report was made under.
    consent_dropped: dict[str, int] = field(default_factory=dict)
    consent_group: str = ""
    consent_mode: str | None = None
    analyses: Analyses = field(default_factory=Analyses)
    scores: CustomerScores = field(default_factory=CustomerScores)

    @property
    def has_data(self) -> bool:
        return self.kpis.events > 0 or self.kpis.users > 0

    @property
    def source_reason(self) -> str:
        if self.kpis.source == "batch":
            return "the day is closed and the batch job has run for it"
        if self.day >= self.today:
            return "the day is still running; batch metrics cover closed days"
        return "the batch job has not run for this closed day yet"


def choose_source(day: date, today: date, comparison: list[Comparison]) -> str:
    """Batch for a closed day the batch job has covered, streaming otherwise."""
    return "batch" if day < today and any(r.batch_count for r in comparison) else "streaming"


def _day_kpis(cur: db.Cursor, day: date, today: date) -> tuple[DayKpis, list[Comparison]]:
    comparison = compare_in(cur, day)
    source = choose_source(day, today, comparison)
    batch = source == "batch"
    events = sum(r.batch_count if batch else r.stream_count for r in comparison)
    purchases = sum(r.batch_count if batch else r.stream_count for r in comparison if r.event_type == "purchase")
    revenue = sum((r.batch_revenue if batch else r.stream_revenue for r in comparison), Decimal("0.00"))
    cur.execute(
        "WITH per_user AS (SELECT user_id, bool_or(event_type = 'page_view') AS viewed,"
        " bool_or(event_type = 'add_to_cart') AS carted, bool_or(event_type = 'purchase') AS bought"
        " FROM events_raw WHERE event_date = %s GROUP BY user_id)"
        " SELECT count(*), count(*) FILTER (WHERE bought), count(*) FILTER (WHERE viewed),"
        " count(*) FILTER (WHERE viewed AND carted), count(*) FILTER (WHERE viewed AND carted AND bought) FROM per_user",
        (day,),
    )
    users, purchasers, viewed, carted, bought = (int(v) for v in cur.fetchone() or (0, 0, 0, 0, 0))
    kpis = DayKpis(day, source, events, purchases, revenue, users, purchasers, (viewed, carted, bought))
    return kpis, comparison


def _hourly(cur: db.Cursor, day: date) -> tuple[dict[str, list[HourCell]], list[tuple[Decimal, int]]]:
    cur.execute(
        "SELECT extract(hour FROM event_timestamp AT TIME ZONE 'UTC')::int, event_type, count(*),"
        " count(DISTINCT user_id), coalesce(sum(amount), 0) FROM events_raw WHERE event_date = %s GROUP BY 1, 2",
        (day,),
    )
    hourly = {kind: [HourCell(0, 0) for _ in range(24)] for kind in EVENT_TYPES}
    revenue: list[tuple[Decimal, int]] = [(Decimal("0.00"), 0) for _ in range(24)]
    for hour, kind, events, users, amount in cur.fetchall():
        hourly.setdefault(kind, [HourCell(0, 0) for _ in range(24)])[hour] = HourCell(int(events), int(users))
        if kind == "purchase":
            revenue[hour] = (Decimal(amount), int(users))
    return hourly, revenue


def _countries(cur: db.Cursor, day: date) -> list[CountryRow]:
    # Events of users without a users_public row (late events of erased people carry a fresh
    # random id) count under "unknown".
    cur.execute(
        "SELECT coalesce(u.country, %s), count(DISTINCT e.user_id),"
        " count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'purchase'),"
        " count(*) FILTER (WHERE e.event_type = 'purchase'), coalesce(sum(e.amount), 0)"
        " FROM events_raw e LEFT JOIN users_public u ON u.user_id = e.user_id"
        " WHERE e.event_date = %s GROUP BY 1 ORDER BY 5 DESC, 2 DESC, 1",
        (UNKNOWN_COUNTRY, day),
    )
    return [CountryRow(str(c), int(u), int(p), int(n), Decimal(r)) for c, u, p, n, r in cur.fetchall()]


def _trend(cur: db.Cursor, day: date, today: date) -> list[TrendDay]:
    first = day - timedelta(days=TREND_DAYS - 1)
    cur.execute(
        "SELECT d::date,"
        " (SELECT sum(total_events) FROM metrics_batch_daily WHERE event_date = d::date),"
        " (SELECT sum(total_amount) FROM metrics_batch_daily WHERE event_date = d::date),"
        " (SELECT sum(total_events) FROM metrics_streaming_daily WHERE event_date = d::date),"
        " (SELECT sum(total_amount) FROM metrics_streaming_daily WHERE event_date = d::date)"
        " FROM generate_series(%s::date, %s::date, interval '1 day') AS d ORDER BY 1",
        (first, day),
    )
    trend = []
    for d, batch_events, batch_revenue, stream_events, stream_revenue in cur.fetchall():
        if d < today and batch_events:
            trend.append(TrendDay(d, "batch", int(batch_events), Decimal(batch_revenue or 0)))
        else:
            trend.append(TrendDay(d, "streaming", int(stream_events or 0), Decimal(stream_revenue or 0)))
    return trend


def _dead_letters(cur: db.Cursor, day: date) -> dict[str, int]:
    cur.execute(
        "SELECT reason, count(*) FROM dead_letter_events WHERE received_at >= %(day)s::date AT TIME ZONE 'UTC'"
        " AND received_at < (%(day)s::date + 1) AT TIME ZONE 'UTC' GROUP BY reason ORDER BY reason",
        {"day": day},
    )
    return {reason: int(n) for reason, n in cur.fetchall()}


def _consent_dropped(cur: db.Cursor, day: date, group: str) -> dict[str, int]:
    """Events of ``day`` consumer group ``group`` dropped for lack of consent, per reason.

    The raw-events group's figure is the one to show: it decides every event before storing
    it, and the streaming group decides the same events alike.
    """
    cur.execute(
        "SELECT reason, sum(dropped_events) FROM consent_dropped_daily WHERE consumer_group = %s AND event_date = %s"
        " GROUP BY reason ORDER BY reason",
        (group, day),
    )
    dropped = {consent.NO_CONSENT: 0, consent.WITHDRAWN: 0}
    dropped.update({reason: int(n) for reason, n in cur.fetchall()})
    return dropped


def analyses(cur: db.Cursor, day: date, today: date, funnel_window_s: int) -> Analyses:
    """Retention by signup week as of ``day`` (the last RETENTION_COHORTS cohorts) and ``day``'s
    ordered funnel, from the summaries; a day without summaries (still open, or not closed by the
    batch job yet) gives none, with the reason in one line."""
    if not summaries.coverage(cur, day, day).days:
        why = (
            "the day is still open: summaries are built when it closes"
            if day >= today
            else "the batch job has not closed it yet (`python -m batch.batch_metrics --changed`), or it is past retention"
        )
        return Analyses(missing=f"No per-person summaries for {day.isoformat()}: {why}.")
    weeks = RETENTION_COHORTS - 1
    first = cohorts.week_of(day) - timedelta(weeks=weeks)
    retention = cohorts.retention(cur, first=first, as_of=day, weeks=weeks, by="signup")
    try:
        funnel = funnels.funnel(cur, day, day, window_s=funnel_window_s)
        by_country = funnels.funnel(cur, day, day, window_s=funnel_window_s, by_country=True)
    except funnels.WindowMismatch as e:
        return Analyses(retention=retention, funnel_refused=str(e))
    return Analyses(retention=retention, funnel=funnel, funnel_by_country=by_country)


def collect(
    conn: psycopg2.extensions.connection,
    day: date,
    today: date,
    *,
    consent_group: str,
    funnel_window_s: int,
    consent_mode: str | None = None,
) -> BusinessFigures:
    """All figures for ``day`` in one read-only transaction (one consistent snapshot); the
    consent drops are those of consumer group ``consent_group`` (the raw-events sink's); the
    ordered funnel is read for the conversion window ``funnel_window_s``."""
    attempt = 1
    while True:
        try:
            return _collect(
                conn, day, today, consent_group=consent_group, funnel_window_s=funnel_window_s, consent_mode=consent_mode
            )
        except psycopg2.errors.SerializationFailure:
            # A day moved out of events_raw's default partition after the snapshot (sql/047).
            if attempt >= SNAPSHOT_ATTEMPTS:
                raise
            attempt += 1


def _collect(
    conn: psycopg2.extensions.connection,
    day: date,
    today: date,
    *,
    consent_group: str,
    funnel_window_s: int,
    consent_mode: str | None,
) -> BusinessFigures:
    with conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # First: the days stay where they are for the snapshot (core.locks.hold_event_days).
        locks.hold_event_days(cur)
        kpis, comparison = _day_kpis(cur, day, today)
        previous, _ = _day_kpis(cur, day - timedelta(days=1), today)
        last_week, _ = _day_kpis(cur, day - timedelta(days=7), today)
        hourly, hourly_revenue = _hourly(cur, day)
        return BusinessFigures(
            day=day,
            today=today,
            kpis=kpis,
            previous_day=previous,
            same_weekday_last_week=last_week,
            comparison=comparison,
            hourly=hourly,
            hourly_revenue=hourly_revenue,
            countries=_countries(cur, day),
            trend=_trend(cur, day, today),
            dead_letters=_dead_letters(cur, day),
            consent_dropped=_consent_dropped(cur, day, consent_group),
            consent_group=consent_group,
            consent_mode=consent_mode,
            analyses=analyses(cur, day, today, funnel_window_s),
            scores=CustomerScores(scoring.stored_rfm(cur), scoring.stored_clv(cur)),
        )


def latest_day_with_events(conn: psycopg2.extensions.connection) -> date | None:
    """The most recent day with any metrics, to point at when the asked-for day is empty."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT max(d) FROM (SELECT max(event_date) AS d FROM metrics_streaming_daily"
            " UNION ALL SELECT max(event_date) FROM metrics_batch_daily) AS t"
        )
        row = cur.fetchone()
        return row[0] if row else None


# The command that gives the report its budget, named when a release is refused for lack of one.
REPORT_BUDGET_COMMAND = f"python -m gdpr.dpo --dpo NAME budget set --analyst {ledger.REPORT_ANALYST} --epsilon EPS"


class ReportBudgetMissing(ledger.BudgetExhausted):
    """The report's by-country release was refused: its budget (or the overall one) is not set or spent."""

    def __init__(self, refused: ledger.BudgetExhausted) -> None:
        super().__init__(refused.analyst, refused.scope, refused.requested, refused.left)
        self.args = (
            f"the report's by-country release was refused ({refused}): set it with `{REPORT_BUDGET_COMMAND}`"
            " (and `--overall`, which every release also draws from)",
        )


def release_countries(conn: psycopg2.extensions.connection, day: date, *, epsilon: float, bounds: ReleaseSettings) -> dp.Release:
    """The day's KPIs by country released with differential privacy (analytics.dp) from the
    report's own budget (``report:daily``), in a transaction of its own that keeps the ledger row.

    One day: a person has one summary in it, so the release declares one day per person (the
    noise of a single day, not of RELEASE_MAX_DAYS). ReportBudgetMissing, naming the command that
    sets the budget, before anything is read when the budget cannot pay ``epsilon``."""
    one_day = bounds.model_copy(update={"max_days": 1})
    try:
        with conn, conn.cursor() as cur:
            return dp.release_daily_kpis(cur, ledger.REPORT_ANALYST, first=day, last=day, epsilon=epsilon, bounds=one_day)
    except ledger.BudgetExhausted as e:
        raise ReportBudgetMissing(e) from e
