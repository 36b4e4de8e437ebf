"""The stored per-person RFM scores and lifetime values, and the lifetime-value fits (sql/039).

Written by the scoring (analytics.scoring) as the analytics_modeller login, each scoring replacing
the previous one whole; read by analytics_reader; a person's rows deleted by their erasure
(gdpr.erasure), objection or restriction (gdpr.rights) in its transaction, and by any withdrawal of
their analytics consent in the transaction that records it (sql/042's trigger). Kept apart from the
scoring so that the erasure imports no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from core import consent, db


@dataclass(frozen=True)
class RfmRow:
    """One person's stored RFM measures, scores and segment."""

    user_id: str
    recency_days: int
    frequency: int
    monetary: Decimal
    r_score: int
    f_score: int
    m_score: int
    segment: str


@dataclass(frozen=True)
class ClvRow:
    """One person's BG/NBD inputs and predictions, as stored."""

    user_id: str
    frequency: int
    recency_days: int
    age_days: int
    mean_spend: Decimal | None
    p_alive: float
    expected_purchases: float
    expected_spend: float
    clv: float


def lock_for_writing(cur: db.Cursor) -> None:
    """Take both score tables for a scoring's write, RFM first (as sql/042's trigger does): a
    withdrawal recorded meanwhile waits for the write and then deletes what it wrote, and one
    recorded before is seen by the write's own statements, which store nobody withdrawn then.
    A scoring reads consent long before it writes: without this, a withdrawal in between would
    be undone by the write until the next scoring."""
    cur.execute("LOCK TABLE analytics_rfm_scores, analytics_clv_scores IN SHARE ROW EXCLUSIVE MODE")


def replace_rfm(cur: db.Cursor, as_of: date, rows: Sequence[RfmRow]) -> int:
    """Replace every stored RFM row with ``rows`` (as of ``as_of``), in the caller's transaction,
    leaving out anyone whose analytics consent is withdrawn by now (lock_for_writing)."""
    lock_for_writing(cur)
    cur.execute("DELETE FROM analytics_rfm_scores")
    cur.execute(
        "INSERT INTO analytics_rfm_scores (user_id, as_of, recency_days, frequency, monetary, r_score, f_score, m_score,"
        " segment) SELECT u, %s, rd, f, m, rs, fs, ms, s FROM unnest(%s::uuid[], %s::int[], %s::int[], %s::numeric[],"
        " %s::smallint[], %s::smallint[], %s::smallint[], %s::text[]) AS t (u, rd, f, m, rs, fs, ms, s)"
        " WHERE u NOT IN (SELECT user_id FROM consent_current WHERE purpose = %s AND NOT granted)",
        (
            as_of,
            [r.user_id for r in rows],
            [r.recency_days for r in rows],
            [r.frequency for r in rows],
            [r.monetary for r in rows],
            [r.r_score for r in rows],
            [r.f_score for r in rows],
            [r.m_score for r in rows],
            [r.segment for r in rows],
            consent.ANALYTICS,
        ),
    )
    return cur.rowcount


def read_rfm(cur: db.Cursor) -> list[RfmRow]:
    """Every stored RFM row, by user id."""
    cur.execute(
        "SELECT user_id::text, recency_days, frequency, monetary, r_score, f_score, m_score, segment"
        " FROM analytics_rfm_scores ORDER BY user_id"
    )
    return [RfmRow(*row) for row in cur.fetchall()]


# The fits' parameter columns, in the models' order (BG/NBD, then Gamma-Gamma); each has _low and _high.
PARAMETERS = ("r", "alpha", "a", "b", "p", "q", "gamma")
# A fit without intervals (clv_model: the data cannot identify every parameter) stores NULL in the
# _low and _high columns (sql/046; both ends or neither).


def stored_bound(value: float | None) -> float | None:
    """An interval's end as read from analytics_clv_fits: None where the fit gave no interval."""
    return None if value is None else float(value)


@dataclass(frozen=True)
class FitRow:
    """A fit as stored: parameters (name -> value, low, high) and, for a validation, the holdout."""

    as_of: date
    calibration_end: date | None
    horizon_days: int
    people: int
    repeat_buyers: int
    parameters: dict[str, tuple[float, float | None, float | None]]  # low, high None: no interval
    holdout: dict[str, float] | None = None  # actual, predicted, naive, mae, naive_mae


HOLDOUT = ("actual", "predicted", "naive", "mae", "naive_mae")


def insert_fit(cur: db.Cursor, fit: FitRow) -> int:
    """Record a fit; return its id."""
    if set(fit.parameters) != set(PARAMETERS):
        raise ValueError(f"a fit has the parameters {', '.join(PARAMETERS)}")
    columns = ["as_of", "calibration_end", "horizon_days", "people", "repeat_buyers"]
    values: list[object] = [fit.as_of, fit.calibration_end, fit.horizon_days, fit.people, fit.repeat_buyers]
    for name in PARAMETERS:
        columns += [name, f"{name}_low", f"{name}_high"]
        value, low, high = fit.parameters[name]
        values += [value, low, high]
    if fit.holdout is not None:
        columns += [f"holdout_{name}" for name in HOLDOUT]
        values += [fit.holdout[name] for name in HOLDOUT]
    # The column names are this module's constants, never input.
    placeholders = ", ".join(["%s"] * len(values))
    cur.execute(f"INSERT INTO analytics_clv_fits ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id", values)  # noqa: S608
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - RETURNING always returns the row
    return int(row[0])


def replace_clv(cur: db.Cursor, fit_id: int, as_of: date, rows: Sequence[ClvRow]) -> int:
    """Replace every stored lifetime value with ``rows``, the predictions of fit ``fit_id``,
    leaving out anyone whose analytics consent is withdrawn by now (lock_for_writing)."""
    lock_for_writing(cur)
    cur.execute("DELETE FROM analytics_clv_scores")
    cur.execute(
        "INSERT INTO analytics_clv_scores (user_id, fit_id, as_of, frequency, recency_days, age_days, mean_spend, p_alive,"
        " expected_purchases, expected_spend, clv) SELECT u, %s, %s, f, r, t, m, pa, ep, es, c FROM unnest(%s::uuid[],"
        " %s::int[], %s::int[], %s::int[], %s::numeric[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
        " AS x (u, f, r, t, m, pa, ep, es, c) WHERE u NOT IN (SELECT user_id FROM consent_current WHERE purpose = %s"
        " AND NOT granted)",
        (
            fit_id,
            as_of,
            [r.user_id for r in rows],
            [r.frequency for r in rows],
            [r.recency_days for r in rows],
            [r.age_days for r in rows],
            [r.mean_spend for r in rows],
            [r.p_alive for r in rows],
            [r.expected_purchases for r in rows],
            [r.expected_spend for r in rows],
            [r.clv for r in rows],
            consent.ANALYTICS,
        ),
    )
    return cur.rowcount


def read_clv(cur: db.Cursor) -> list[ClvRow]:
    """Every stored lifetime value, by user id."""
    cur.execute(
        "SELECT user_id::text, frequency, recency_days, age_days, mean_spend, p_alive, expected_purchases, expected_spend,"
        " clv FROM analytics_clv_scores ORDER BY user_id"
    )
    return [ClvRow(*row) for row in cur.fetchall()]


def remove_people(cur: db.Cursor, user_ids: list[str]) -> int:
    """Delete these people's RFM and lifetime-value rows (an erasure, in its transaction); return
    the rows deleted."""
    if not user_ids:
        return 0
    cur.execute("DELETE FROM analytics_rfm_scores WHERE user_id = ANY(%s::uuid[])", (user_ids,))
    removed = cur.rowcount
    cur.execute("DELETE FROM analytics_clv_scores WHERE user_id = ANY(%s::uuid[])", (user_ids,))
    return removed + cur.rowcount
