"""The per-person-day summaries (sql/037, analytics.summaries) and the analyses on them: equal to a
naive recompute from events_raw (late events included), the funnel's order and window, retention's
future cells, an erasure that changes no analysis, retention (storage) that drops their days, and
the commands."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from analytics import cohorts, customers, funnels
from core import cli, db
from core.config import Settings
from core.events import user_uuid
from gdpr import retention
from gdpr.processing import process_pending
from gdpr.retention import Run
from tests.helpers import query, run_command
from tests.integration.gdpr.test_rights import request

pytestmark = pytest.mark.integration

WINDOW = 3600
PEOPLE = 30
SPAN = 20  # days of history, ending yesterday


def moment(day: date, seconds: float) -> datetime:
    return datetime.combine(day, time(), UTC) + timedelta(seconds=seconds)


def insert(settings: Settings, events: list[tuple[str, str, datetime, Decimal | None]]) -> None:
    """Events as the raw sink stores them (the owner's insert: the consumers are not under test)."""
    for n, (user_id, kind, at, amount) in enumerate(events):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 0, %s)",
            (user_id, kind, at, at.astimezone(UTC).date(), amount, n),
        )


def shoppers(settings: Settings, today: date, seed: int = 28) -> list[str]:
    """PEOPLE people (users_pii and users_public: signed up over the span, two countries) with
    sessions on random days: page views, then sometimes a cart and a purchase seconds to an hour
    and more apart, sometimes out of order."""
    rng = random.Random(seed)
    first = today - timedelta(days=SPAN)
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (first, today + timedelta(days=1)))
    people, events = [], []
    for n in range(PEOPLE):
        user_id = user_uuid(1000 + n)
        signup = first + timedelta(days=rng.randrange(SPAN))
        query(
            settings,
            "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, 'A Person', 'Weg 1')",
            (user_id, f"shopper{n}@example.com"),
        )
        query(
            settings,
            "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, %s, %s)",
            (user_id, rng.choice(("DE", "FR")), signup),
        )
        people.append(user_id)
        for offset in range((today - signup).days):
            day = signup + timedelta(days=offset)
            if rng.random() > 0.35:
                continue
            for _session in range(rng.randint(1, 2)):
                at = rng.uniform(0, 86_000)
                kinds = rng.choice(
                    (["page_view"], ["page_view", "add_to_cart"], ["page_view", "add_to_cart", "purchase"],
                     ["page_view", "purchase", "add_to_cart"], ["add_to_cart", "page_view"], ["purchase"])
                )  # fmt: skip
                for kind in kinds:
                    amount = Decimal(rng.randint(100, 20_000)) / 100 if kind == "purchase" else None
                    events.append((user_id, kind, moment(day, min(at, 86_399)), amount))
                    at += rng.choice((0, rng.uniform(1, 300), rng.uniform(600, 4_000)))
    insert(settings, events)
    return people


def batch_changed() -> None:
    result = run_command("batch.batch_metrics", "--changed")
    assert result.returncode == 0, result.stderr


NAIVE_TOTALS = """
SELECT event_date, user_id::text, count(*) FILTER (WHERE event_type = 'page_view'),
       count(*) FILTER (WHERE event_type = 'add_to_cart'), count(*) FILTER (WHERE event_type = 'purchase'),
       coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0)
FROM events_raw WHERE event_date < %(today)s GROUP BY 1, 2
"""
# Every page view with its first cart within the window (a join, not the summaries' window
# functions), then that cart's first purchase within the window.
NAIVE_SEQUENCES = """
WITH carted AS (
    SELECT v.event_date, v.user_id, v.event_timestamp AS viewed, min(c.event_timestamp) AS carted
    FROM events_raw AS v LEFT JOIN events_raw AS c
      ON c.user_id = v.user_id AND c.event_date = v.event_date AND c.event_type = 'add_to_cart'
     AND c.event_timestamp >= v.event_timestamp AND c.event_timestamp <= v.event_timestamp + make_interval(secs => %(w)s)
    WHERE v.event_type = 'page_view' AND v.event_date < %(today)s GROUP BY 1, 2, 3
)
SELECT s.event_date, s.user_id::text, s.viewed, s.carted, min(p.event_timestamp)
FROM carted AS s LEFT JOIN events_raw AS p
  ON p.user_id = s.user_id AND p.event_date = s.event_date AND p.event_type = 'purchase'
 AND p.event_timestamp >= s.carted AND p.event_timestamp <= s.viewed + make_interval(secs => %(w)s)
GROUP BY 1, 2, 3, 4
"""


def seconds(later: datetime | None, earlier: datetime | None) -> Decimal | None:
    if later is None or earlier is None:
        return None
    delta = later - earlier
    return Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def naive(settings: Settings, today: date, window: int = WINDOW) -> dict[tuple[date, str], tuple[Any, ...]]:
    """The summaries' rows recomputed from events_raw, the funnel's sequence chosen in Python:
    the furthest step, then the earliest completed, then the latest page view."""
    rows = {
        (day, user): (int(v), int(c), int(p), Decimal(r), 0, None, None)
        for day, user, v, c, p, r in query(settings, NAIVE_TOTALS, {"today": today})
    }
    best: dict[tuple[date, str], tuple[int, datetime, float]] = {}
    chosen: dict[tuple[date, str], tuple[Any, ...]] = {}
    for day, user, viewed, carted, bought in query(settings, NAIVE_SEQUENCES, {"today": today, "w": window}):
        step = 3 if bought else 2 if carted else 1
        rank = (-step, bought or carted or viewed, -viewed.timestamp())
        if (day, user) not in best or rank < best[(day, user)]:
            best[(day, user)] = rank
            chosen[(day, user)] = (step, seconds(carted, viewed), seconds(bought, carted))
    return {key: (*totals[:4], *chosen.get(key, (0, None, None))) for key, totals in rows.items()}


def reading(settings: Settings) -> Any:
    """A connection of the analytics login."""
    return db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE)


def naive_rollups(settings: Settings, today: date) -> tuple[dict[tuple[date, str], tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    """The rollups (sql/041) recomputed from events_raw in Python: per person and week, and per
    person, the active days, purchase days, purchases, revenue, the first purchase day and its
    revenue, the last purchase day and the last active day."""
    days: dict[str, dict[date, tuple[int, Decimal]]] = defaultdict(dict)
    for day, user, _v, _c, p, r in query(settings, NAIVE_TOTALS, {"today": today}):
        days[user][day] = (int(p), Decimal(r))

    def rolled(history: dict[date, tuple[int, Decimal]]) -> tuple[Any, ...]:
        bought = sorted(day for day, (p, _r) in history.items() if p)
        return (
            len(history), len(bought), sum(p for p, _r in history.values()), sum((r for _p, r in history.values()), Decimal(0)),
            bought[0] if bought else None, history[bought[0]][1] if bought else None, bought[-1] if bought else None,
            max(history),
        )  # fmt: skip

    weeks: dict[tuple[date, str], tuple[Any, ...]] = {}
    totals: dict[str, tuple[Any, ...]] = {}
    for user, history in days.items():
        for week in {cohorts.week_of(day) for day in history}:
            weeks[(week, user)] = rolled({day: v for day, v in history.items() if cohorts.week_of(day) == week})
        totals[user] = rolled(history)[1:]
    return weeks, totals


def rolled_up(settings: Settings) -> tuple[dict[tuple[date, str], tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    weeks = {
        (row[0], row[1]): (int(row[2]), int(row[3]), int(row[4]), *row[5:])
        for row in query(
            settings,
            "SELECT week, user_id::text, active_days, purchase_days, purchases, revenue, first_purchase,"
            " first_purchase_revenue, last_purchase, last_active FROM analytics_person_weeks",
        )
    }
    totals = {
        row[0]: (int(row[1]), int(row[2]), *row[3:])
        for row in query(
            settings,
            "SELECT user_id::text, purchase_days, purchases, revenue, first_purchase, first_purchase_revenue, last_purchase,"
            " last_active FROM analytics_person_totals",
        )
    }
    return weeks, totals


def summarised(settings: Settings) -> dict[tuple[date, str], tuple[Any, ...]]:
    rows = query(
        settings,
        "SELECT event_date, user_id::text, page_views, add_to_carts, purchases, revenue, funnel_step, view_to_cart_s,"
        " cart_to_purchase_s FROM analytics_person_days",
    )
    return {(row[0], row[1]): (int(row[2]), int(row[3]), int(row[4]), row[5], int(row[6]), row[7], row[8]) for row in rows}


def analyses(settings: Settings, first: date, last: date) -> tuple[Any, ...]:
    """What every analysis answers over the summaries, without user ids."""
    with db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        by_signup = cohorts.retention(cur, first=first, as_of=last, weeks=4, by_country=True)
        by_purchase = cohorts.retention(cur, first=first, as_of=last, weeks=4, by="first-purchase")
        funnel = funnels.funnel(cur, first, last, window_s=WINDOW, by_country=True)
        people = sorted((*vars(c).values(),)[1:] for c in customers.customers(cur, last, last - timedelta(days=7)))
    return by_signup, by_purchase, funnel, people


@pytest.fixture
def today() -> date:
    return cli.today_utc()


def test_the_summaries_equal_a_naive_recompute_late_events_and_erasures_included(settings: Settings, today: date) -> None:
    people = shoppers(settings, today)
    batch_changed()
    expected = naive(settings, today)
    assert len(expected) > 50 and any(row[4] == 3 for row in expected.values())
    assert summarised(settings) == expected
    assert rolled_up(settings) == naive_rollups(settings, today)

    # A late event for a closed day: the changed-days run rebuilds that day, and only the days it names.
    late_day = today - timedelta(days=3)
    insert(settings, [(people[0], "purchase", moment(late_day, 100), Decimal("12.34"))])
    assert summarised(settings) != naive(settings, today)
    assert rolled_up(settings) != naive_rollups(settings, today)
    batch_changed()
    assert summarised(settings) == naive(settings, today)
    assert rolled_up(settings) == naive_rollups(settings, today)
    # Rebuilding the day again replaces its people's rollups, never adds to them.
    assert run_command("batch.batch_metrics", "--from", str(late_day), "--to", str(late_day)).returncode == 0
    assert rolled_up(settings) == naive_rollups(settings, today)

    # An erasure moves a person's rows with their events: every analysis answers as before.
    first, last = today - timedelta(days=SPAN), today - timedelta(days=1)
    before = analyses(settings, first, last)
    erased = [people[0], people[1]]
    for n in (0, 1):
        request(settings, f"shopper{n}@example.com")
    assert process_pending(settings) == {"completed": 2}
    assert query(settings, "SELECT count(*) FROM analytics_person_days WHERE user_id = ANY(%s::uuid[])", (erased,)) == [(0,)]
    assert summarised(settings) == naive(settings, today)
    assert rolled_up(settings) == naive_rollups(settings, today)
    for table in ("analytics_person_weeks", "analytics_person_totals"):
        assert query(settings, f"SELECT count(*) FROM {table} WHERE user_id = ANY(%s::uuid[])", (erased,)) == [(0,)]  # noqa: S608
    assert analyses(settings, first, last) == before


def test_the_funnel_counts_steps_in_order_within_the_window_and_the_view_s_day(settings: Settings, today: date) -> None:
    day = today - timedelta(days=2)
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (day, today))
    out_of_order, late_buy, on_the_edge, midnight, twice = (user_uuid(n) for n in range(1, 6))
    insert(
        settings,
        [
            # A purchase before the add_to_cart does not count.
            (out_of_order, "page_view", moment(day, 36_000), None),
            (out_of_order, "purchase", moment(day, 36_060), Decimal("5.00")),
            (out_of_order, "add_to_cart", moment(day, 36_120), None),
            # A purchase one second past the window does not count; at the window's end it does.
            (late_buy, "page_view", moment(day, 36_000), None),
            (late_buy, "add_to_cart", moment(day, 36_600), None),
            (late_buy, "purchase", moment(day, 36_000 + WINDOW + 1), Decimal("5.00")),
            (on_the_edge, "page_view", moment(day, 36_000), None),
            (on_the_edge, "add_to_cart", moment(day, 36_600), None),
            (on_the_edge, "purchase", moment(day, 36_000 + WINDOW), Decimal("5.00")),
            # A sequence across midnight ends at midnight: the purchase is on the next day.
            (midnight, "page_view", moment(day, 86_400 - 600), None),
            (midnight, "add_to_cart", moment(day, 86_400 - 300), None),
            (midnight, "purchase", moment(day, 86_400 + 300), Decimal("5.00")),
            # Two views before one cart: the later view led to it.
            (twice, "page_view", moment(day, 1_000), None),
            (twice, "page_view", moment(day, 1_500), None),
            (twice, "add_to_cart", moment(day, 1_600), None),
        ],
    )
    assert run_command("batch.batch_metrics", "--from", str(day), "--to", str(day + timedelta(days=1))).returncode == 0
    steps = dict(query(settings, "SELECT user_id::text, funnel_step FROM analytics_person_days WHERE event_date = %s", (day,)))
    assert steps == {out_of_order: 2, late_buy: 2, on_the_edge: 3, midnight: 2, twice: 2}
    assert query(settings, "SELECT funnel_step FROM analytics_person_days WHERE event_date = %s", (day + timedelta(days=1),)) == [
        (0,)
    ]
    assert query(settings, "SELECT view_to_cart_s FROM analytics_person_days WHERE user_id = %s", (twice,)) == [(Decimal(100),)]
    assert summarised(settings) == naive(settings, today)

    with db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        [row] = funnels.funnel(cur, day, day, window_s=WINDOW).rows
        assert (row.viewed, row.carted, row.bought) == (5, 5, 1)
        with pytest.raises(funnels.WindowMismatch, match="ANALYTICS_FUNNEL_WINDOW_S=600"):
            funnels.funnel(cur, day, day, window_s=600)
    refused = run_command("analytics.funnel", str(day), env={"ANALYTICS_FUNNEL_WINDOW_S": "600"})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "ANALYTICS_FUNNEL_WINDOW_S" in refused.stderr


def naive_retention(
    settings: Settings, first: date, as_of: date, weeks: int, *, by_country: bool = False
) -> dict[Any, tuple[int, list[int | None]]]:
    """Retention by signup week (and country) from events_raw and users_public, in Python."""
    signups, countries = {}, {}
    for user, signup, country in query(settings, "SELECT user_id::text, signup_date, country FROM users_public"):
        signups[user], countries[user] = signup, country
    active: dict[str, set[date]] = defaultdict(set)
    for user, day in query(
        settings, "SELECT DISTINCT user_id::text, event_date FROM events_raw WHERE event_date <= %s", (as_of,)
    ):
        active[user].add(cohorts.week_of(day))
    table: dict[Any, tuple[int, list[int | None]]] = {}
    start = cohorts.week_of(first)
    for user, signup in signups.items():
        week = cohorts.week_of(signup)
        if not start <= week or signup > as_of:
            continue
        key = (week, countries[user]) if by_country else week
        size, cells = table.get(key, (0, [0] * (weeks + 1)))
        for k in range(weeks + 1):
            if week + timedelta(weeks=k) in active[user]:
                cells[k] = (cells[k] or 0) + 1
        table[key] = (size + 1, cells)
    last = cohorts.week_of(as_of)

    def week_of_key(key: Any) -> date:
        return key[0] if by_country else key  # type: ignore[no-any-return]

    return {
        key: (size, [n if week_of_key(key) + timedelta(weeks=k) <= last else None for k, n in enumerate(cells)])
        for key, (size, cells) in table.items()
    }


def test_retention_equals_the_naive_answer_and_leaves_the_future_empty(settings: Settings, today: date) -> None:
    shoppers(settings, today, seed=7)
    batch_changed()
    first, as_of = today - timedelta(days=SPAN), today - timedelta(days=1)
    with db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        result = cohorts.retention(cur, first=first, as_of=as_of, weeks=4)
    assert {c.week: (c.size, c.active) for c in result.cohorts} == naive_retention(settings, first, as_of, 4)
    # By country, and with as_of on a day before the end of its week (its days read from the summaries).
    for day in (as_of, as_of - timedelta(days=3), cohorts.week_of(as_of) - timedelta(days=1)):
        with reading(settings) as conn, conn, conn.cursor() as cur:
            by_country = cohorts.retention(cur, first=first, as_of=day, weeks=4, by_country=True)
        expected = naive_retention(settings, first, day, 4, by_country=True)
        assert len({country for _week, country in expected}) == 2
        assert {(c.week, c.country): (c.size, c.active) for c in by_country.cohorts} == expected
    latest = max(result.cohorts, key=lambda c: c.week)
    assert latest.active[0] is not None and latest.active[1:] == [None] * 4

    shown = run_command("analytics.retention", "--json", "--weeks", "4", env={"REPORT_MIN_CELL_USERS": "1"})
    assert shown.returncode == 0, shown.stderr
    published = json.loads(shown.stdout)
    assert [(c["size"], c["active"]) for c in published["cohorts"]] == [(c.size, c.active) for c in result.cohorts]
    suppressed = json.loads(
        run_command("analytics.retention", "--json", "--weeks", "4", env={"REPORT_MIN_CELL_USERS": "1000"}).stdout
    )
    assert all(isinstance(c["size"], str) for c in suppressed["cohorts"])
    assert run_command("analytics.retention", "--by", "first-purchase").returncode == 0
    funnel = run_command(
        "analytics.funnel", "--from", str(first), "--to", str(today), "--json", env={"REPORT_MIN_CELL_USERS": "1"}
    )
    assert funnel.returncode == 0, funnel.stderr
    assert json.loads(funnel.stdout)["days_not_summarised"][-1] == str(today)


def test_customers_equal_the_naive_histories(settings: Settings, today: date) -> None:
    shoppers(settings, today, seed=11)
    batch_changed()
    as_of = today - timedelta(days=1)
    days: dict[str, dict[date, tuple[int, Decimal]]] = defaultdict(dict)
    for user, day, n, revenue in query(
        settings,
        "SELECT user_id::text, event_date, count(*), sum(amount) FROM events_raw WHERE event_type = 'purchase' GROUP BY 1, 2",
    ):
        days[user][day] = (int(n), Decimal(revenue))
    # The whole history (the totals' rollup), and calibration ends on each weekday (weeks and edge days).
    for end in (as_of, *(as_of - timedelta(days=n) for n in range(2, 9))):
        with reading(settings) as conn, conn, conn.cursor() as cur:
            found = {c.user_id: c for c in customers.customers(cur, as_of, end)}
        expected = {}
        for user, history in days.items():
            before = sorted(day for day in history if day <= end)
            if not before:
                continue
            repeat = [history[day][1] for day in before[1:]]
            expected[user] = (
                before[0], len(repeat), (before[-1] - before[0]).days, (end - before[0]).days,
                None if not repeat else (sum(repeat, Decimal(0)) / len(repeat)).quantize(Decimal("0.000001")),
                sum(history[day][0] for day in before), sum(history[day][1] for day in before),
                len([day for day in history if end < day <= as_of]),
                sum((history[day][1] for day in history if end < day <= as_of), Decimal(0)),
            )  # fmt: skip
        assert expected and any(row[1] > 0 for row in expected.values())
        assert {
            user: (c.first_purchase, c.frequency, c.recency_days, c.age_days, c.repeat_mean_spend, c.purchases, c.total_revenue,
                   c.holdout_purchase_days, c.holdout_revenue)
            for user, c in found.items()
        } == expected, end  # fmt: skip


def test_retention_of_storage_drops_the_summaries_of_the_days_it_drops(settings: Settings, today: date) -> None:
    shoppers(settings, today, seed=3)
    batch_changed()
    short = settings.model_copy(update={"retention": settings.retention.model_copy(update={"raw_event_days": 10})})
    cutoff = today - timedelta(days=10)
    kept = query(settings, "SELECT count(*) FROM analytics_person_days WHERE event_date >= %s", (cutoff,))
    assert query(settings, "SELECT count(*) FROM analytics_person_days WHERE event_date < %s", (cutoff,)) != [(0,)]
    with db.connection(settings.database, application_name="test", role=db.RETENTION_ROLE) as conn:
        dry = retention.remove_raw_events(Run(conn, short, today, dry_run=True))
        assert "summary rows would go" in dry.note
        retention.remove_raw_events(Run(conn, short, today, dry_run=False))
    assert query(settings, "SELECT count(*) FROM analytics_person_days WHERE event_date < %s", (cutoff,)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM analytics_person_days_built WHERE event_date < %s", (cutoff,)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM analytics_person_days WHERE event_date >= %s", (cutoff,)) == kept
    # The rollups are those of the days kept (the cutoff's week recomputed, the weeks before it gone).
    assert rolled_up(settings) == naive_rollups(settings, today)


def test_the_commands_have_help_and_one_line_errors(settings: Settings) -> None:
    for module in ("analytics.retention", "analytics.funnel"):
        assert run_command(module, "--help").returncode == 0
        empty = run_command(module)
        assert empty.returncode == 2 and empty.stderr.strip().splitlines() == [
            "error: no day is summarised yet: run `python -m batch.batch_metrics --changed` first"
        ]
    assert run_command("analytics.retention", "--weeks", "-1").returncode == 2
