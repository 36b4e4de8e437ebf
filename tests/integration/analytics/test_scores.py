"""The stored per-person RFM scores and lifetime values (sql/039, analytics.scoring) on the real
PostgreSQL: equal to the pure models applied to the customer histories, what leaves the zone
suppressed as the reports do, a fit on a population drawn from known parameters that finds them
again through events, the batch and the summaries, erasure removing a person's rows, the
scheduler's job, and the commands' help, JSON and one-line errors."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2.errors
import pytest

from analytics import clv_model, customers, rfm_model, scores, scoring
from analytics.release import suppressed_cells
from core import cli, db
from core.config import Settings
from core.events import user_uuid
from gdpr.processing import process_pending
from tests.clv_simulation import TRUE_BGNBD, TRUE_GAMMA_GAMMA
from tests.helpers import query, run_command
from tests.integration.analytics.test_summaries import batch_changed, shoppers
from tests.integration.gdpr.test_rights import request

pytestmark = pytest.mark.integration

POPULATION = 2_000
HISTORY_DAYS = 300


@pytest.fixture
def today() -> date:
    return cli.today_utc()


def as_analytics(settings: Settings) -> Any:
    return db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE)


def histories(settings: Settings, as_of: date) -> list[customers.Customer]:
    with as_analytics(settings) as conn, conn, conn.cursor() as cur:
        return customers.customers(cur, as_of)


def run_json(module: str, *args: str, k: int = 5) -> dict[str, Any]:
    result = run_command(module, *args, "--json", env={"REPORT_MIN_CELL_USERS": str(k)})
    assert result.returncode == 0, result.stderr
    published: dict[str, Any] = json.loads(result.stdout)
    return published


def stored_rfm(settings: Settings) -> dict[str, tuple[Any, ...]]:
    rows = query(settings, "SELECT user_id::text, recency_days, frequency, monetary, r_score, f_score, m_score, segment"
                 " FROM analytics_rfm_scores")  # fmt: skip
    return {row[0]: tuple(row[1:]) for row in rows}


def test_the_stored_rfm_scores_are_the_model_s_and_only_sizes_and_values_leave(settings: Settings, today: date) -> None:
    shoppers(settings, today)
    batch_changed()
    as_of = today - timedelta(days=1)
    shown = run_json("analytics.rfm", k=1)
    assert shown["as_of"] == as_of.isoformat()

    # Computed here: recency from the raw purchases' last day, the model on those measures.
    people = histories(settings, as_of)
    last = dict(query(settings, "SELECT user_id::text, max(event_date) FROM events_raw WHERE event_type = 'purchase'"
                                " AND event_date <= %s GROUP BY 1", (as_of,)))  # fmt: skip
    measures = [rfm_model.Rfm((as_of - last[c.user_id]).days, c.purchases, float(c.total_revenue)) for c in people]
    expected = rfm_model.score(measures)
    assert len(people) > 10
    assert stored_rfm(settings) == {
        c.user_id: (int(m.recency_days), c.purchases, c.total_revenue, s.recency, s.frequency, s.monetary, s.segment)
        for c, m, s in zip(people, measures, expected, strict=True)
    }

    # The segment table: sizes and values, every segment shown with k = 1.
    sizes = {name: sum(1 for s in expected if s.segment == name) for name in rfm_model.SEGMENTS}
    assert shown["people"] == len(people)
    assert {row["segment"]: row["people"] for row in shown["segments"]} == sizes
    values = {name: sum(m.monetary for m, s in zip(measures, expected, strict=True) if s.segment == name) for name in sizes}
    assert {row["segment"]: row["total_value"] for row in shown["segments"]} == {n: round(v, 2) for n, v in values.items()}

    # With the default k, small segments (and enough others to protect them) are suppressed.
    k = 5
    hidden = suppressed_cells(sizes, k)
    assert hidden, "the test population must have a small segment"
    published = run_json("analytics.rfm", k=k)
    for row in published["segments"]:
        if row["segment"] in hidden:
            assert row["people"] is None and row["total_value"] is None and row["mean_value"] is None
        else:
            assert row["people"] == sizes[row["segment"]]
    table = run_command("analytics.rfm", env={"REPORT_MIN_CELL_USERS": str(k)})
    assert table.returncode == 0 and "champions" in table.stdout and "*" in table.stdout


def population(settings: Settings, today: date, seed: int = 28) -> list[str]:
    """POPULATION people drawn from the BG/NBD and Gamma-Gamma truths (tests.clv_simulation): each
    acquired with a first purchase on a day of the HISTORY_DAYS before today, then buying at their
    own Poisson rate until they drop out after a repeat purchase, each purchase worth Gamma(p, nu).
    Stored as purchase events (and users_pii rows, so that people can be erased)."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = TRUE_BGNBD.r, TRUE_BGNBD.alpha, TRUE_BGNBD.a, TRUE_BGNBD.b
    p, q, gamma = TRUE_GAMMA_GAMMA.p, TRUE_GAMMA_GAMMA.q, TRUE_GAMMA_GAMMA.gamma
    first_day = today - timedelta(days=HISTORY_DAYS)
    people = [user_uuid(50_000 + n) for n in range(POPULATION)]
    users, days, amounts = [], [], []
    for person in people:
        rate, dropout, nu = rng.gamma(r, 1 / alpha), rng.beta(a, b), rng.gamma(q, 1 / gamma)
        t = float(rng.uniform(0, HISTORY_DAYS))  # the first purchase, in days after first_day
        while t < HISTORY_DAYS:
            users.append(person)
            days.append(first_day + timedelta(days=int(t)))
            amounts.append(Decimal(str(round(max(float(rng.gamma(p, 1 / nu)), 0.01), 2))))
            if len(users) > 1 and users[-2] == person and rng.random() < dropout:
                break  # drop-out after a repeat purchase
            t += float(rng.exponential(1 / rate))
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address)"
        " SELECT u, 'buyer' || n || '@example.com', 'A Buyer', 'Weg 1' FROM unnest(%s::uuid[]) WITH ORDINALITY AS t (u, n)",
        (people,),
    )
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
        " kafka_offset) SELECT gen_random_uuid(), u, 'purchase', d + time '12:00' AT TIME ZONE 'UTC', d, m, 0, n"
        " FROM unnest(%s::uuid[], %s::date[], %s::numeric[]) WITH ORDINALITY AS t (u, d, m, n)",
        (users, days, amounts),
    )
    return people


def stored_clv(settings: Settings) -> dict[str, tuple[float, float, float, float]]:
    rows = query(settings, "SELECT user_id::text, p_alive, expected_purchases, expected_spend, clv FROM analytics_clv_scores")
    return {row[0]: tuple(row[1:]) for row in rows}


def test_a_fit_through_the_database_finds_the_population_s_parameters_and_stores_its_predictions(
    settings: Settings, today: date, tmp_path: Path
) -> None:
    people = population(settings, today)
    batch_changed()
    as_of = today - timedelta(days=1)

    # The scheduler's job runs both commands, each as the analytics login.
    job = run_command("scheduler", "run-once", "analytics", timeout=300)
    assert job.returncode == 0, job.stdout + job.stderr
    assert query(settings, "SELECT outcome FROM scheduler_runs WHERE job = 'analytics'") == [("ok",)]
    assert query(settings, "SELECT count(*) FROM analytics_clv_fits") == [(1,)]

    shown = run_json("analytics.clv", "--horizon-days", "365", k=1)
    fitted = {row["name"]: row for row in shown["parameters"]}
    # Roughly the truth: what a business reads off the parameters, within 25 %.
    truth = {
        "rate": TRUE_BGNBD.r / TRUE_BGNBD.alpha,
        "dropout": TRUE_BGNBD.a / (TRUE_BGNBD.a + TRUE_BGNBD.b),
        "spend": TRUE_GAMMA_GAMMA.p * TRUE_GAMMA_GAMMA.gamma / (TRUE_GAMMA_GAMMA.q - 1),
    }
    v = {name: row["value"] for name, row in fitted.items()}
    found = {"rate": v["r"] / v["alpha"], "dropout": v["a"] / (v["a"] + v["b"]), "spend": v["p"] * v["gamma"] / (v["q"] - 1)}
    for name, value in truth.items():
        assert found[name] == pytest.approx(value, rel=0.25), (name, found, truth)
    for row in shown["parameters"]:
        assert row["low"] < row["value"] < row["high"]

    # The stored predictions are the model's on the customer histories, with the stored fit.
    [fit] = query(
        settings, "SELECT r, alpha, a, b, p, q, gamma, people FROM analytics_clv_fits WHERE id = %s", (shown["fit_id"],)
    )
    bgnbd, spend = clv_model.BgNbdParams(*fit[:4]), clv_model.GammaGammaParams(*fit[4:7])
    buyers = histories(settings, as_of)
    assert fit[7] == len(buyers) == shown["buyers"]
    inputs = clv_model.Customers(
        x=np.array([c.frequency for c in buyers], dtype=np.float64),
        t_x=np.array([c.recency_days for c in buyers], dtype=np.float64),
        age=np.array([c.age_days for c in buyers], dtype=np.float64),
        m=np.array([float(c.repeat_mean_spend or 0) for c in buyers]),
    )
    predicted = clv_model.predict(bgnbd, spend, inputs, horizon_days=365)
    stored = stored_clv(settings)
    assert set(stored) == {c.user_id for c in buyers}
    for i, c in enumerate(buyers):
        expected = (
            predicted.probability_alive[i],
            predicted.expected_purchases[i],
            predicted.expected_spend[i],
            predicted.clv[i],
        )
        assert stored[c.user_id] == pytest.approx(expected, rel=1e-9)
    assert shown["clv"]["people"] == len(buyers)
    assert shown["clv"]["total"] == pytest.approx(float(predicted.clv.sum()), abs=0.01)
    assert sum(bucket["people"] for bucket in shown["clv"]["buckets"]) == len(buyers)

    # A calibration/holdout validation: recorded with its holdout, the chart written.
    chart = tmp_path / "calibration.png"
    checked = run_json("analytics.clv", "--holdout-days", "60", "--chart", str(chart))
    holdout = checked["holdout"]
    assert holdout["actual"] > 0 and holdout["mae"] < holdout["naive_mae"]
    assert chart.read_bytes().startswith(b"\x89PNG")
    [(calibration_end, actual)] = query(
        settings, "SELECT calibration_end, holdout_actual FROM analytics_clv_fits WHERE id = %s", (checked["fit_id"],)
    )
    assert calibration_end == as_of - timedelta(days=60) and actual == holdout["actual"]
    assert stored_clv(settings) == stored, "a validation leaves the stored predictions as they are"

    # An erasure removes the person's rows in its transaction; no row follows them to their new id.
    rfm_before = run_json("analytics.rfm")
    erased = next(c.user_id for c in buyers if c.frequency > 0)
    email = f"buyer{people.index(erased) + 1}@example.com"
    request(settings, email)
    assert process_pending(settings) == {"completed": 1}
    [(new,)] = query(
        settings, "SELECT DISTINCT user_id::text FROM analytics_person_days WHERE NOT user_id = ANY(%s::uuid[])", (people,)
    )
    for table in ("analytics_rfm_scores", "analytics_clv_scores"):
        assert query(settings, f"SELECT count(*) FROM {table} WHERE user_id IN (%s, %s)", (erased, new)) == [(0,)]  # noqa: S608
    # The segments rescored after it are the same: the person counts under the random id.
    assert run_json("analytics.rfm") == rfm_before


def test_the_commands_have_help_and_one_line_errors(settings: Settings, today: date) -> None:
    for module in ("analytics.rfm", "analytics.clv"):
        helped = run_command(module, "--help")
        assert helped.returncode == 0 and "login_analytics" in helped.stdout
        empty = run_command(module)
        assert empty.returncode == 2 and empty.stderr.strip().splitlines() == [
            "error: no day is summarised yet: run `python -m batch.batch_metrics --changed` first"
        ]
        skipped = run_command(module, "--skip-if-too-few")
        assert (skipped.returncode, skipped.stderr, skipped.stdout.strip().splitlines()) == (
            0, "", ["skipped: no day is summarised yet: run `python -m batch.batch_metrics --changed` first"]
        )  # fmt: skip
    assert run_command("analytics.clv", "--chart", "x.png").returncode == 2
    assert run_command("analytics.clv", "--horizon-days", "0").returncode == 2

    # Three buyers, none of whom came back: scored by RFM, but nothing to fit a lifetime value on.
    day = today - timedelta(days=2)
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
        " kafka_offset) SELECT gen_random_uuid(), u, 'purchase', %s::date + time '10:00' AT TIME ZONE 'UTC', %s, 9.99, 0, 0"
        " FROM unnest(%s::uuid[]) AS u",
        (day, day, [user_uuid(n) for n in range(3)]),
    )
    batch_changed()
    scored = run_json("analytics.rfm")
    assert scored["people"] is None, "three people are fewer than k: not even their number leaves"
    assert query(settings, "SELECT count(*) FROM analytics_rfm_scores") == [(3,)]
    too_few = run_command("analytics.clv")
    assert too_few.returncode == 2
    [line] = too_few.stderr.strip().splitlines()
    assert line.startswith("error: cannot fit the lifetime-value models on the 3 buyers") and "repeat purchase" in line
    # The scheduler's step: the same line on stdout, status 0, nothing stored; other errors still fail.
    quiet = run_command("analytics.clv", "--skip-if-too-few")
    assert (quiet.returncode, quiet.stderr, quiet.stdout.strip().splitlines()) == (0, "", [line.replace("error: ", "skipped: ")])
    assert query(settings, "SELECT count(*) FROM analytics_clv_fits") == [(0,)]
    assert run_command("analytics.clv", "--skip-if-too-few", "--as-of", str(today)).returncode == 2
    job = run_command("scheduler", "run-once", "analytics", timeout=300)
    assert job.returncode == 0, job.stderr
    assert query(settings, "SELECT outcome FROM scheduler_runs WHERE job = 'analytics'") == [("ok",)]
    late = run_command("analytics.clv", "--as-of", str(today))
    assert late.returncode == 2 and "after the last summarised day" in late.stderr
    holdout = run_command("analytics.clv", "--holdout-days", "30")
    assert holdout.returncode == 2 and "leaves no calibration period" in holdout.stderr


def test_a_fit_without_intervals_is_stored_and_read_back_without_them(settings: Settings, today: date) -> None:
    """A fit that has no intervals stores NULL in its interval columns (sql/046), which reads back
    as "no interval", never as a bound; the reports' reader shows the same."""
    parameters: dict[str, tuple[float, float | None, float | None]] = {
        name: (1.0 + i, None, None) if name in clv_model.BGNBD_PARAMS else (1.0 + i, 0.5 + i, 1.5 + i)
        for i, name in enumerate(scores.PARAMETERS)
    }
    person = user_uuid(90_001)
    modeller = db.connection(settings.database, application_name="test", role=db.ANALYTICS_MODEL_ROLE)
    with modeller as conn, conn, conn.cursor() as cur:
        fit_id = scores.insert_fit(cur, scores.FitRow(today, None, 365, 1, 1, parameters))
        scores.replace_clv(cur, fit_id, today, [scores.ClvRow(person, 1, 3, 10, Decimal("20.00"), 0.9, 2.0, 20.0, 40.0)])
    [(a_low, a_high, p_low)] = query(settings, "SELECT a_low, a_high, p_low FROM analytics_clv_fits WHERE id = %s", (fit_id,))
    assert a_low is None and a_high is None and p_low == parameters["p"][1]
    with as_analytics(settings) as conn, conn, conn.cursor() as cur:
        stored = scoring.stored_clv(cur)
    assert stored is not None and stored.fit_id == fit_id
    assert dict(stored.parameters) == parameters
    # Half an interval is no interval: the table refuses it.
    owner = db.connection(settings.database, application_name="test")
    with owner as conn, conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute("UPDATE analytics_clv_fits SET r_low = 1.0 WHERE id = %s", (fit_id,))
