"""GDPR audit report: the lifecycle of every privacy request, and proof that erasure held.

Requests by type and status, overdue pending requests (Art. 12(3): one month), processing time
p50/p95/max, erasures and exports completed, personal data redacted at ingest, dead letters,
and a residual-PII check (must be 0): rows in the analytics tables that still link to an erased
user, plus the values of erased people each erasure still found stored after scrubbing. The
report cannot look for those values itself (they are gone, and it may not read them): the
erasure searches for them before it forgets them and records the count in the audit trail.
Printed on the console and written to ``REPORTS_DIR/gdpr_audit_report_YYYY-MM-DD.md``. It
runs as the ``privacy_auditor`` role, which cannot read an email, and holds counts and
durations only. ``--format md,html,json`` chooses the files; the HTML embeds a chart of requests
received and processing time per day over the last 30 days.

Consent: grants and withdrawals recorded in ``consent_ledger``, in all and per UTC day (of
``effective_at``) and purpose over the last 30 days, with how many were recorded by erasures
(source ``erasure``). The auditor may read only the ledger's purpose, granted, effective_at,
source and recorded_at, never whose consent it is; the report reads no other column.

Retention (storage limitation, Art. 5(1)(e)): what ``python -m gdpr.retention`` removed per kind
of data (``retention_runs``, dry runs left out), and the oldest data still held: the first day of
the raw events, of the dead letters, and of the processed requests whose residue is still kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions

from core import db, partitions
from core.config import Settings
from core.consent import ERASURE_SOURCE
from gdpr import requests
from gdpr.requests import OPEN_STATUSES, REQUEST_TYPES, STATUSES
from reports import charts
from reports.render import FORMATS, Document, Section, Table, render_markdown, write_document

HISTORY_DAYS = 30
# The kinds of data retention records (sql/018), in the order gdpr.retention handles them.
RETENTION_KINDS = {
    "raw_events": "raw events",
    "dead_letters": "dead letters",
    "access_exports": "access exports",
    "privacy_requests": "processed requests (residue)",
    "dpo_sessions": "expired DPO sessions",
    "verification_codes": "used verification codes",
    "reports": "report files",
}


@dataclass(frozen=True)
class RequestDay:
    """Requests received on one UTC day, and how long the processed ones took."""

    day: date
    received: dict[str, int]  # by request type
    p95_seconds: float | None


@dataclass(frozen=True)
class ConsentDay:
    """Consent changes effective on one UTC day for one purpose."""

    day: date
    purpose: str
    granted: int
    withdrawn: int
    by_erasure: int  # of the changes, recorded by an erasure


@dataclass(frozen=True)
class ConsentTotals:
    """Every consent change in the ledger: grants, withdrawals, and the erasures' share."""

    granted: int = 0
    withdrawn: int = 0
    by_erasure: int = 0
    purposes: int = 0


@dataclass(frozen=True)
class RetentionKind:
    """What retention removed of one kind of data: in its last run, and in all runs."""

    kind: str
    last_run: datetime
    last_cutoff: date
    last_removed: int
    removed: int


@dataclass(frozen=True)
class RetentionFigures:
    """Storage limitation: what retention removed (dry runs left out), and the oldest data held."""

    kinds: list[RetentionKind] = field(default_factory=list)
    oldest_event_day: date | None = None
    oldest_dead_letter_day: date | None = None
    oldest_processed_request_day: date | None = None  # of those whose residue is still kept

    @property
    def last_run(self) -> datetime | None:
        return max((k.last_run for k in self.kinds), default=None)


@dataclass(frozen=True)
class AuditFigures:
    by_type_status: dict[tuple[str, str], int]
    overdue: int
    processing_s: tuple[float, float, float] | None  # p50, p95, max
    anonymized_users: int
    residual_links: int
    redactions: dict[str, int]
    dead_letters: dict[str, int]
    history: list[RequestDay] = field(default_factory=list)
    erasure_residuals: int = 0  # values of erased people found still stored by their erasure
    consent_totals: ConsentTotals = ConsentTotals()
    consent_history: list[ConsentDay] = field(default_factory=list)  # days with changes only
    dpo_actions: dict[str, int] = field(default_factory=dict)  # denied, extended (audit rows)
    holds_active: int = 0
    holds_placed: int = 0
    restrictions_in_force: int = 0
    retention: RetentionFigures = RetentionFigures()

    @property
    def residual(self) -> int:
        return self.residual_links + self.erasure_residuals

    def count(self, *, request_type: str | None = None, status: str | None = None) -> int:
        return sum(
            n
            for (kind, state), n in self.by_type_status.items()
            if (request_type is None or kind == request_type) and (status is None or state == status)
        )

    @property
    def total(self) -> int:
        return self.count()

    @property
    def pending(self) -> int:
        """Still to be answered: unverified, pending or on hold."""
        return sum(self.count(status=status) for status in OPEN_STATUSES)

    @property
    def processed(self) -> int:
        return self.total - self.pending


def _scalar(cur: db.Cursor, query: str) -> int:
    cur.execute(query)
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def collect(conn: psycopg2.extensions.connection, today: date) -> AuditFigures:
    with conn, conn.cursor() as cur:
        by_type_status = requests.counts_by_type_and_status(cur)
        overdue = requests.count_overdue(cur)
        processing = requests.processing_seconds(cur)
        anonymized = _scalar(cur, "SELECT count(*) FROM users_pii WHERE anonymized_at IS NOT NULL")
        residual = _scalar(
            cur,
            "SELECT (SELECT count(*) FROM events_raw e JOIN users_pii p USING (user_id) WHERE p.anonymized_at IS NOT NULL)"
            " + (SELECT count(*) FROM users_public u JOIN users_pii p USING (user_id) WHERE p.anonymized_at IS NOT NULL)",
        )
        erasure_residuals = _scalar(
            cur, "SELECT sum((details->>'residual_values')::bigint) FROM privacy_audit_log WHERE action = 'erased'"
        )
        cur.execute("SELECT kind, sum(redactions) FROM ingest_redactions GROUP BY kind ORDER BY kind")
        redactions = {kind: int(n) for kind, n in cur.fetchall()}
        cur.execute("SELECT reason, count(*) FROM dead_letter_events GROUP BY reason ORDER BY reason")
        dead = {reason: int(n) for reason, n in cur.fetchall()}
        history = _history(cur, today)
        consent_totals, consent_history = _consent(cur, today)
        cur.execute("SELECT action, count(*) FROM privacy_audit_log WHERE action IN ('denied', 'extended') GROUP BY action")
        dpo_actions = {action: int(n) for action, n in cur.fetchall()}
        holds = _scalar(cur, "SELECT count(*) FROM legal_holds WHERE released_at IS NULL AND (until IS NULL OR until > now())")
        placed = _scalar(cur, "SELECT count(id) FROM legal_holds")
        restricted = _scalar(cur, "SELECT count(*) FROM processing_restrictions WHERE lifted_at IS NULL")
        retention = _retention(cur)
    return AuditFigures(
        by_type_status, overdue, processing, anonymized, residual, redactions, dead, history, erasure_residuals,
        consent_totals=consent_totals, consent_history=consent_history, dpo_actions=dpo_actions, holds_active=holds,
        holds_placed=placed,
        restrictions_in_force=restricted, retention=retention,
    )  # fmt: skip


def _retention(cur: db.Cursor) -> RetentionFigures:
    """Each kind's last retention run and its total, and the first day of what is still held (the
    days only: the auditor may read events_raw's event_date, never who)."""
    cur.execute(
        "SELECT DISTINCT ON (kind) kind, finished_at, cutoff, removed, sum(removed) OVER (PARTITION BY kind)"
        " FROM retention_runs WHERE NOT dry_run ORDER BY kind, finished_at DESC, id DESC"
    )
    found = {kind: RetentionKind(kind, at, cutoff, int(last), int(total)) for kind, at, cutoff, last, total in cur.fetchall()}
    events = partitions.oldest_event_day(cur)
    cur.execute("SELECT (min(received_at) AT TIME ZONE 'UTC')::date FROM dead_letter_events")
    row = cur.fetchone()
    letters = row[0] if row else None
    kinds = [found[kind] for kind in RETENTION_KINDS if kind in found]
    return RetentionFigures(kinds, events, letters, requests.oldest_residue_day(cur))


def _consent(cur: db.Cursor, today: date) -> tuple[ConsentTotals, list[ConsentDay]]:
    """Consent changes in all, and per UTC day and purpose over the last HISTORY_DAYS days.

    Only purpose, granted, effective_at and source are read: the columns the auditor role may
    see (sql/010), so the report could not name a person if it tried.
    """
    cur.execute(
        "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted),"
        " count(*) FILTER (WHERE source = %s), count(DISTINCT purpose) FROM consent_ledger",
        (ERASURE_SOURCE,),
    )
    row = cur.fetchone()
    totals = ConsentTotals(*(int(v) for v in row)) if row else ConsentTotals()
    first = today - timedelta(days=HISTORY_DAYS - 1)
    cur.execute(
        "SELECT (effective_at AT TIME ZONE 'UTC')::date, purpose, count(*) FILTER (WHERE granted),"
        " count(*) FILTER (WHERE NOT granted), count(*) FILTER (WHERE source = %s) FROM consent_ledger"
        " WHERE effective_at >= %s::date AT TIME ZONE 'UTC' AND effective_at < (%s::date + 1) AT TIME ZONE 'UTC'"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (ERASURE_SOURCE, first, today),
    )
    history = [ConsentDay(day, purpose, int(g), int(w), int(e)) for day, purpose, g, w, e in cur.fetchall()]
    return totals, history


def _history(cur: db.Cursor, today: date) -> list[RequestDay]:
    first = today - timedelta(days=HISTORY_DAYS - 1)
    received: dict[date, dict[str, int]] = {}
    p95: dict[date, float] = {}
    for day, kind, n, seconds in requests.received_per_day(cur, first):
        received.setdefault(day, {})[kind] = n
        if seconds is not None:
            p95[day] = max(p95.get(day, 0.0), seconds)
    days = [first + timedelta(days=i) for i in range(HISTORY_DAYS)]
    return [RequestDay(d, {k: received.get(d, {}).get(k, 0) for k in REQUEST_TYPES}, p95.get(d)) for d in days]


def _seconds(value: float) -> str:
    return f"{value:,.1f} s" if value < 3600 else f"{value / 3600:,.1f} h"


def build_document(figures: AuditFigures, day: date) -> Document:
    """The audit report as a Document (rendered to Markdown and HTML)."""
    timing = (
        "n/a (nothing processed yet)"
        if figures.processing_s is None
        else " / ".join(_seconds(v) for v in figures.processing_s) + " (p50 / p95 / max)"
    )
    residual = (
        "0 (no analytics row links to an erased user; no erasure found a value of the person still stored)"
        if figures.residual == 0
        else f"**{figures.residual:,} FAIL** ({figures.residual_links:,} rows linked to erased users,"
        f" {figures.erasure_residuals:,} values of erased people still stored after their erasure)"
    )
    bullets = [
        f"Privacy requests: **{figures.total:,}** ({figures.processed:,} answered, {figures.pending:,} open:"
        " unverified, pending or on hold)",
        f"Overdue (open past the deadline of Art. 12(3), one month or as extended; on hold included): **{figures.overdue:,}**",
        f"DPO decisions: **{figures.dpo_actions.get('denied', 0):,}** denied (Art. 12(5)),"
        f" **{figures.dpo_actions.get('extended', 0):,}** extended (Art. 12(3)); legal holds placed:"
        f" **{figures.holds_placed:,}**, active: **{figures.holds_active:,}**;"
        f" restrictions in force (Art. 18): **{figures.restrictions_in_force:,}**",
        f"Processing time: **{timing}**",
        f"Erasures completed: **{figures.count(request_type='erasure', status='completed'):,}**;"
        f" access exports completed: **{figures.count(request_type='access', status='completed'):,}**",
        f"Users with anonymized PII: **{figures.anonymized_users:,}**",
        f"Residual-PII check: {residual}",
        f"Personal data redacted at ingest: **{sum(figures.redactions.values()):,}**"
        + (" (" + ", ".join(f"{kind} {n:,}" for kind, n in figures.redactions.items()) + ")" if figures.redactions else ""),
        f"Dead-lettered events (rejected at ingest): **{sum(figures.dead_letters.values()):,}**"
        + (
            " (" + ", ".join(f"{reason} {n:,}" for reason, n in figures.dead_letters.items()) + ")"
            if figures.dead_letters
            else ""
        ),
        consent_line(figures.consent_totals),
        retention_line(figures.retention),
    ]
    sections = [
        Section(
            "Requests by type and status",
            table=Table(
                ["status", *REQUEST_TYPES, "total"],
                [
                    (
                        status,
                        *(f"{figures.count(request_type=kind, status=status):,}" for kind in REQUEST_TYPES),
                        f"{figures.count(status=status):,}",
                    )
                    for status in STATUSES
                ],
            ),
        )
    ]
    if figures.history:
        sections.append(
            Section(
                f"Requests and processing time, last {len(figures.history)} days",
                paragraphs=["Requests received per UTC day by type, and the 95th percentile of their processing time."],
                chart=charts.privacy_requests_over_time(
                    [h.day for h in figures.history],
                    {kind: [h.received[kind] for h in figures.history] for kind in REQUEST_TYPES},
                    [h.p95_seconds for h in figures.history],
                ),
            )
        )
    sections.append(consent_section(figures.consent_history))
    sections.append(retention_section(figures.retention))
    return Document(f"GDPR audit report {day.isoformat()}", bullets, sections)


def consent_line(totals: ConsentTotals) -> str:
    """The headline on consent: grants and withdrawals recorded, and how many by erasures."""
    return (
        f"Consent changes recorded: **{totals.granted:,}** grants, **{totals.withdrawn:,}** withdrawals"
        f" ({totals.by_erasure:,} recorded by erasures; {totals.purposes:,} purpose{'' if totals.purposes == 1 else 's'})"
    )


def consent_section(history: list[ConsentDay]) -> Section:
    """Consent grants and withdrawals per UTC day and purpose (days with changes only)."""
    title = f"Consent grants and withdrawals, last {HISTORY_DAYS} days"
    if not history:
        return Section(title, paragraphs=[f"No consent change took effect in the last {HISTORY_DAYS} days (UTC)."])
    return Section(
        title,
        paragraphs=[
            "Changes per UTC day on which they took effect (`effective_at`) and purpose; counts only. "
            "Erasures record a withdrawal of every consent the person gave."
        ],
        table=Table(
            ["day", "purpose", "grants", "withdrawals", "recorded by erasures"],
            [(h.day.isoformat(), h.purpose, f"{h.granted:,}", f"{h.withdrawn:,}", f"{h.by_erasure:,}") for h in history],
        ),
    )


def retention_line(figures: RetentionFigures) -> str:
    """The headline on storage limitation: the last run, what went, and the oldest data held."""
    last = figures.last_run
    removed = ", ".join(f"{RETENTION_KINDS[k.kind]} {k.removed:,}" for k in figures.kinds if k.removed)
    held = ", ".join(
        f"{what} from **{day}**" if day else f"{what}: none"
        for what, day in (
            ("raw events", figures.oldest_event_day),
            ("dead letters", figures.oldest_dead_letter_day),
            ("processed requests", figures.oldest_processed_request_day),
        )
    )
    ran = "never run (`python -m gdpr.retention`)" if last is None else f"last run **{last.date()}**"
    return f"Retention (storage limitation, Art. 5(1)(e)): {ran}; removed: {removed or 'nothing yet'}; oldest data held: {held}"


def retention_section(figures: RetentionFigures) -> Section:
    """Per kind of data: retention's last run, its cutoff, what it removed then and in all."""
    title = "Retention (storage limitation)"
    note = (
        "What `python -m gdpr.retention` removed, per kind of data (dry runs left out). The daily metrics, "
        "the audit trail and the requests' status and proof are never removed."
    )
    if not figures.kinds:
        return Section(title, paragraphs=[note, "Retention has not run yet."])
    return Section(
        title,
        paragraphs=[note],
        table=Table(
            ["kind", "last run (UTC)", "cutoff", "removed then", "removed in all"],
            [
                (RETENTION_KINDS[k.kind], f"{k.last_run:%Y-%m-%d %H:%M}", k.last_cutoff.isoformat(), f"{k.last_removed:,}",
                 f"{k.removed:,}")
                for k in figures.kinds
            ],
        ),
    )  # fmt: skip


def build_data(figures: AuditFigures, day: date) -> dict[str, Any]:
    """The figures for the JSON file: counts and durations only, like the pages."""
    return {
        "report": "gdpr_audit",
        "day": day,
        "requests": [
            {"request_type": kind, "status": status, "count": n} for (kind, status), n in sorted(figures.by_type_status.items())
        ],
        "total": figures.total,
        "pending": figures.pending,
        "overdue": figures.overdue,
        "processing_seconds": None
        if figures.processing_s is None
        else dict(zip(("p50", "p95", "max"), figures.processing_s, strict=True)),
        "anonymized_users": figures.anonymized_users,
        "residual_links_to_erased_users": figures.residual_links,
        "erasure_residual_values": figures.erasure_residuals,
        "redactions_at_ingest": figures.redactions,
        "dead_letters": figures.dead_letters,
        "history": [asdict(h) for h in figures.history],
        "consent": {
            "totals": asdict(figures.consent_totals),
            "per_day": [asdict(h) for h in figures.consent_history],
        },
        "dpo_actions": figures.dpo_actions,
        "legal_holds_active": figures.holds_active,
        "legal_holds_placed": figures.holds_placed,
        "restrictions_in_force": figures.restrictions_in_force,
        "retention": {
            "last_run": figures.retention.last_run,
            "kinds": [asdict(k) for k in figures.retention.kinds],
            "oldest_held": {
                "raw_events": figures.retention.oldest_event_day,
                "dead_letters": figures.retention.oldest_dead_letter_day,
                "processed_requests": figures.retention.oldest_processed_request_day,
            },
        },
    }


def generate(settings: Settings, day: date, formats: list[str] | None = None) -> tuple[str, list[Path]]:
    """Collect, render and write the audit report; return the Markdown and the files."""
    with db.connection(settings.database, application_name="gdpr_audit_report", role=db.AUDITOR_ROLE) as conn:
        figures = collect(conn, day)
    doc = build_document(figures, day)
    stem = f"gdpr_audit_report_{day.isoformat()}"
    files = write_document(settings.reports_dir, stem, doc, build_data(figures, day), formats or list(FORMATS))
    return render_markdown(doc, stem), files
