"""A person's rights over the analyses (sql/040), through the real processor and PostgreSQL: the
access export holds their day summaries, RFM scores and lifetime value as stored, with the logic
explained (Art. 15(1)(h)); an objection (Art. 21) or a restriction (Art. 18) deletes their scores
and no rescoring brings them back, while their summaries stay."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics import scores
from core import cli, consent, db
from core.config import Settings
from gdpr.processing import process_pending
from tests.helpers import query
from tests.integration.analytics.test_scores import histories, population, run_json, stored_clv, stored_rfm
from tests.integration.analytics.test_summaries import batch_changed
from tests.integration.gdpr.test_rights import add_person, request

pytestmark = pytest.mark.integration


@pytest.fixture
def today() -> date:
    return cli.today_utc()


def scored_population(settings: Settings, today: date) -> list[str]:
    """The lifetime-value test's population, summarised, with RFM scores and a full fit stored."""
    people = population(settings, today)
    batch_changed()
    run_json("analytics.rfm")
    run_json("analytics.clv")
    return people


def email_of(people: list[str], user_id: str) -> str:
    return f"buyer{people.index(user_id) + 1}@example.com"


def repeat_buyers(settings: Settings, n: int) -> list[str]:
    """``n`` people with both an RFM row and a lifetime value from a repeat purchase."""
    rows = query(
        settings,
        "SELECT user_id::text FROM analytics_clv_scores AS c JOIN analytics_rfm_scores USING (user_id) WHERE c.frequency > 0"
        " ORDER BY user_id LIMIT %s",
        (n,),
    )
    assert len(rows) == n
    return [row[0] for row in rows]


def export_of(settings: Settings, request_id: int) -> dict[str, Any]:
    [(path,)] = query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (request_id,))
    document: dict[str, Any] = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    return document


def test_an_access_export_holds_the_person_s_analytics_as_stored(settings: Settings, today: date) -> None:
    people = scored_population(settings, today)
    [buyer] = repeat_buyers(settings, 1)
    add_person(settings, 7, "nobody@example.com")  # a person without events: nothing in the analyses
    asked, nobody = request(settings, email_of(people, buyer), "access"), request(settings, "nobody@example.com", "access")
    assert process_pending(settings) == {"completed": 2}

    analytics = export_of(settings, asked)["analytics"]
    days = query(
        settings,
        "SELECT event_date, page_views, add_to_carts, purchases, revenue, funnel_step, view_to_cart_s, cart_to_purchase_s"
        " FROM analytics_person_days WHERE user_id = %s ORDER BY event_date",
        (buyer,),
    )
    assert [
        (d["date"], d["page_views"], d["add_to_carts"], d["purchases"], d["revenue"], d["funnel_step"],
         d["view_to_cart_s"], d["cart_to_purchase_s"])
        for d in analytics["person_days"]
    ] == [
        (day.isoformat(), views, carts, bought, str(revenue), step, None if a is None else str(a), None if b is None else str(b))
        for day, views, carts, bought, revenue, step, a, b in days
    ]  # fmt: skip
    # The summaries are the person's purchases: as many as their stored purchase events.
    [(purchases,)] = query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s AND event_type = 'purchase'", (buyer,))
    assert sum(d["purchases"] for d in analytics["person_days"]) == purchases > 0

    [(as_of, *rfm)] = query(
        settings,
        "SELECT as_of, recency_days, frequency, monetary, r_score, f_score, m_score, segment FROM analytics_rfm_scores"
        " WHERE user_id = %s",
        (buyer,),
    )
    shown = analytics["rfm"]
    assert shown["as_of"] == as_of.isoformat()
    assert (shown["recency_days"], shown["frequency"], shown["monetary"], shown["r_score"], shown["f_score"],
            shown["m_score"], shown["segment"]) == (rfm[0], rfm[1], str(rfm[2]), *rfm[3:])  # fmt: skip

    [(fit_id, fit_as_of, horizon, buyers)] = query(
        settings,
        "SELECT f.id, f.as_of, f.horizon_days, f.people FROM analytics_clv_scores AS s JOIN analytics_clv_fits AS f"
        " ON f.id = s.fit_id WHERE s.user_id = %s",
        (buyer,),
    )
    value = analytics["lifetime_value"]
    assert (value["probability_still_a_customer"], value["expected_purchase_days"], value["expected_value_per_purchase_day"],
            value["value_over_horizon"]) == stored_clv(settings)[buyer]  # fmt: skip
    assert value["horizon_days"] == horizon
    assert (value["fit"]["fit_id"], value["fit"]["data_up_to"], value["fit"]["buyers"]) == (fit_id, fit_as_of.isoformat(), buyers)
    assert any("segment" in line for line in analytics["about"]) and any("Art. 21" in line for line in analytics["about"])

    empty = export_of(settings, nobody)["analytics"]
    assert (empty["person_days"], empty["rfm"], empty["lifetime_value"]) == ([], None, None)
    assert empty["about"] == analytics["about"]


def test_an_objection_or_a_restriction_deletes_the_scores_and_no_rescoring_brings_them_back(
    settings: Settings, today: date
) -> None:
    people = scored_population(settings, today)
    objector, restricted = repeat_buyers(settings, 2)
    summaries = query(
        settings, "SELECT * FROM analytics_person_days WHERE user_id IN (%s, %s) ORDER BY 1, 2", (objector, restricted)
    )
    scored = len(stored_rfm(settings))
    request(settings, email_of(people, objector), "objection")
    request(settings, email_of(people, restricted), "restriction")
    assert process_pending(settings) == {"completed": 2}

    gone = (objector, restricted)
    for table in ("analytics_rfm_scores", "analytics_clv_scores"):
        assert query(settings, f"SELECT count(*) FROM {table} WHERE user_id IN (%s, %s)", gone) == [(0,)]  # noqa: S608
    # Their summaries stay, as their events do: the aggregates count them as before.
    assert query(settings, "SELECT * FROM analytics_person_days WHERE user_id IN (%s, %s) ORDER BY 1, 2", gone) == summaries

    # Rescored: everybody else, as before, and neither of them.
    as_of = today - timedelta(days=1)
    everybody = {c.user_id for c in histories(settings, as_of)}
    assert gone[0] in everybody and gone[1] in everybody
    rescored = run_json("analytics.rfm", k=1)
    assert rescored["people"] == scored - 2
    assert set(stored_rfm(settings)) == everybody - set(gone)
    fitted = run_json("analytics.clv")
    assert set(stored_clv(settings)) == everybody - set(gone)
    assert query(settings, "SELECT people FROM analytics_clv_fits WHERE id = %s", (fitted["fit_id"],)) == [(scored - 2,)]


def test_a_withdrawal_of_analytics_consent_deletes_the_person_s_scores_in_the_transaction_that_records_it(
    settings: Settings, today: date
) -> None:
    """A person's own withdrawal, recorded as the collector records it (its login, core.consent):
    their RFM and lifetime-value rows go with it, not at the next scoring; a rolled-back withdrawal
    takes nothing; other people's rows, a grant and another purpose's withdrawal change nothing."""
    scored_population(settings, today)
    person, granting, other_purpose = repeat_buyers(settings, 3)
    rfm, clv = stored_rfm(settings), stored_clv(settings)

    with db.connection(settings.database, role=db.COLLECTOR_ROLE) as conn:
        with conn.cursor() as cur:
            consent.record(cur, person, granted=False, source="collector:web")
        conn.rollback()
    assert (stored_rfm(settings), stored_clv(settings)) == (rfm, clv)

    with db.connection(settings.database, role=db.COLLECTOR_ROLE) as conn, conn, conn.cursor() as cur:
        consent.record(cur, person, granted=False, source="collector:web")
        consent.record(cur, granting, granted=True, source="collector:web")
        consent.record(cur, other_purpose, granted=False, source="collector:web", purpose="marketing_email")
    assert stored_rfm(settings) == {user: row for user, row in rfm.items() if user != person}
    assert stored_clv(settings) == {user: row for user, row in clv.items() if user != person}


def test_a_scoring_that_read_before_a_withdrawal_does_not_write_the_person_back(settings: Settings, today: date) -> None:
    """A scoring reads consent long before it writes: a withdrawal recorded in between is seen by
    its write, which stores everybody else's rows and not the person's."""
    scored_population(settings, today)
    [person] = repeat_buyers(settings, 1)
    rfm, clv = stored_rfm(settings), stored_clv(settings)
    [(fit_id, as_of)] = query(settings, "SELECT DISTINCT fit_id, as_of FROM analytics_clv_scores")

    with db.connection(settings.database, role=db.ANALYTICS_MODEL_ROLE) as scoring, scoring, scoring.cursor() as cur:
        rfm_rows, clv_rows = scores.read_rfm(cur), scores.read_clv(cur)  # what a scoring computed, person included
        assert person in {row.user_id for row in rfm_rows} and person in {row.user_id for row in clv_rows}
        with db.connection(settings.database, role=db.COLLECTOR_ROLE) as conn, conn, conn.cursor() as other:
            consent.record(other, person, granted=False, source="collector:web")
        assert scores.replace_rfm(cur, as_of, rfm_rows) == len(rfm_rows) - 1
        assert scores.replace_clv(cur, fit_id, as_of, clv_rows) == len(clv_rows) - 1
    assert stored_rfm(settings) == {user: row for user, row in rfm.items() if user != person}
    assert stored_clv(settings) == {user: row for user, row in clv.items() if user != person}
