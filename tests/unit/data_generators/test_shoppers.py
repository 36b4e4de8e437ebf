"""Shoppers' sessions: view, then cart, then purchase, seconds to minutes apart; no one comes back
after dropping out or shows up before signing up; the window filled in order; reproducible by seed;
the history a BG/NBD population of known parameters, drop-out included."""

from __future__ import annotations

import itertools
import json
import math
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from analytics import clv_model
from analytics.clv_model import BgNbdParams
from core.events import Event, parse_event
from data_generators.population import Parameters
from data_generators.shoppers import STEP_MIN_S, WEEKDAY_TRAFFIC, ShopperFactory

USERS = [str(uuid.UUID(int=n, version=4)) for n in range(1, 501)]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LONG_AGO = [date(2024, 1, 1)] * len(USERS)


def events_of(factory: ShopperFactory, n: int) -> list[Event]:
    return [parse_event(m["value"], now=NOW) for m in factory.messages(n, NOW)]


def by_person(events: list[Event]) -> dict[str, list[Event]]:
    people: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        people[e.user_id].append(e)
    return {user: sorted(own, key=lambda e: e.event_timestamp) for user, own in people.items()}


def test_a_purchase_follows_an_add_to_cart_which_follows_a_view_seconds_to_minutes_apart() -> None:
    events = events_of(ShopperFactory(USERS, LONG_AGO, 1, backfill_days=14, count=30_000, now=NOW), 30_000)
    kinds = {e.event_type for e in events}
    assert kinds == {"page_view", "add_to_cart", "purchase"}
    for own in by_person(events).values():
        for before, event in itertools.pairwise(own):
            gap = event.event_timestamp - before.event_timestamp
            if event.event_type == "purchase":
                assert before.event_type == "add_to_cart" and timedelta(seconds=STEP_MIN_S) <= gap < timedelta(hours=1)
            if event.event_type == "add_to_cart":
                assert before.event_type == "page_view" and timedelta(seconds=STEP_MIN_S) <= gap < timedelta(hours=1)
        assert own[0].event_type == "page_view"
    purchases = [e for e in events if e.event_type == "purchase"]
    assert purchases and all(e.amount is not None and e.amount > 0 for e in purchases)
    assert all(e.amount is None for e in events if e.event_type != "purchase")
    assert len({e.event_id for e in events}) == len(events)


def test_a_backfill_fills_its_window_with_about_the_count_in_time_order_busier_at_weekends() -> None:
    """The count sets the expected events; the run ends at the count or at now, whichever first."""
    count = 40_000
    factory = ShopperFactory(USERS, LONG_AGO, 2, backfill_days=28, count=count, now=NOW)
    chunks: list[list[Event]] = []
    while sum(map(len, chunks)) < count and not factory.finished():
        chunks.append(events_of(factory, 500))
    events = [e for chunk in chunks for e in chunk]
    assert 0.95 * count <= len(events) <= count
    assert all(NOW - timedelta(days=28) <= e.event_timestamp <= NOW for e in events)
    # Chunks sweep the window: a later chunk's sessions begin after an earlier chunk's.
    assert min(e.event_timestamp for e in chunks[-1]) > max(e.event_timestamp for e in chunks[0])
    per_day = [sum(e.event_timestamp.weekday() == d for e in events) for d in range(7)]
    saturday, tuesday = per_day[5] / WEEKDAY_TRAFFIC[5], per_day[1] / WEEKDAY_TRAFFIC[1]
    assert per_day[6] > per_day[1] and 0.8 < saturday / tuesday < 1.25


def test_people_who_drop_out_do_not_come_back() -> None:
    """Drop-out certain after a repeat purchase (the first cannot end a person's visits, as in
    BG/NBD): two purchases per person at most, and nothing after the second but the rest of a
    session begun before; never dropping out: people buy a third time."""
    certain = Parameters(a=1e6, b=1e-6)
    events = events_of(ShopperFactory(USERS, LONG_AGO, 3, backfill_days=60, count=20_000, now=NOW, params=certain), 20_000)
    people = by_person(events)
    for own in people.values():
        bought = [e.event_timestamp for e in own if e.event_type == "purchase"]
        assert len(bought) <= 2
        assert len(bought) < 2 or own[-1].event_timestamp < bought[1] + timedelta(hours=1)
    assert sum(sum(e.event_type == "purchase" for e in own) == 2 for own in people.values()) > 50
    never = Parameters(a=1e-6, b=1e6)
    loyal = ShopperFactory(USERS, LONG_AGO, 3, backfill_days=60, count=20_000, now=NOW, params=never)
    again = by_person(events_of(loyal, 20_000))
    assert sum(sum(e.event_type == "purchase" for e in own) > 2 for own in again.values()) > 20


def test_nobody_shows_up_before_signing_up() -> None:
    start = (NOW - timedelta(days=14)).date()
    signups = [start + timedelta(days=i % 14) for i in range(len(USERS))]
    events = events_of(ShopperFactory(USERS, signups, 4, backfill_days=14, count=20_000, now=NOW), 20_000)
    signup = dict(zip(USERS, signups, strict=True))
    assert all(e.event_timestamp.date() >= signup[e.user_id] for e in events)
    # Late signers are there too, from their signup on.
    assert any(signup[e.user_id] >= start + timedelta(days=10) for e in events)


def test_live_sessions_end_now_and_the_same_seed_makes_the_same_events() -> None:
    def run(seed: int) -> list[tuple[str, str, datetime, object]]:
        factory = ShopperFactory(USERS, LONG_AGO, seed, now=NOW)
        return [(e.user_id, e.event_type, e.event_timestamp, e.amount) for e in events_of(factory, 5_000)]

    first = run(5)
    assert first == run(5) and first != run(6)
    assert all(NOW - timedelta(hours=2) < stamp <= NOW for _u, _k, stamp, _a in first)


def test_people_who_sign_up_during_the_window_join_it_and_the_traffic_grows_with_them() -> None:
    """generate_users --signup-days spreads signups over the backfill window (the demo's 84 days):
    each person joins at their signup with their own rate, so the traffic grows week by week, and
    the count fills the window to its end without crowding its last days."""
    days, count = 84, 56_000
    rng = random.Random(1)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2_000)]
    signups = [NOW.date() - timedelta(days=int(rng.random() * days)) for _ in users]
    events = events_of(ShopperFactory(users, signups, 6, backfill_days=days, count=count, now=NOW), count)
    assert 0.95 * count <= len(events) <= count
    signup = dict(zip(users, signups, strict=True))
    assert all(e.event_timestamp.date() >= signup[e.user_id] for e in events)
    start = NOW - timedelta(days=days)
    weeks = [0] * (days // 7)
    for e in events:
        weeks[min((e.event_timestamp - start).days // 7, len(weeks) - 1)] += 1
    assert weeks[0] < weeks[4] < weeks[8] < weeks[10]
    assert weeks[11] < 1.6 * weeks[10], weeks


DEMO_DAYS = 84


def signing_up_over(days: int, people: int, seed: int) -> tuple[list[str], list[date]]:
    """Users who sign up over the last ``days`` days (generate_users --signup-days, as the demo)."""
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(people)]
    return users, [NOW.date() - timedelta(days=int(rng.random() * days)) for _ in users]


def purchases_of(factory: ShopperFactory, count: int) -> dict[str, list[datetime]]:
    """Each buyer's purchase moments, in order (only the purchases are parsed: the rest is most of the events)."""
    bought: dict[str, list[datetime]] = defaultdict(list)
    for m in factory.messages(count, NOW):
        if b'"event_type":"purchase"' in m["value"]:
            event = json.loads(m["value"])
            bought[event["user_id"]].append(datetime.fromisoformat(event["event_timestamp"]))
    return {user: sorted(moments) for user, moments in bought.items()}


def test_people_drop_out_as_often_as_the_bgnbd_says_given_their_histories() -> None:
    """The generator's own truth (who dropped out) against the model's P(alive) with the true
    parameters: a sweep that quickened the survivors as others dropped out hid drop-out.

    From a person's first purchase on, BG/NBD holds with their rate lam and drop-out chance p;
    having waited w days from their signup (or the window's start) for that first purchase, a
    person's lam is Gamma(r + 1, alpha + w) (the Gamma prior times the wait's likelihood), so
    P(alive | x, t_x, T) is the model's formula with those two parameters. The expected number
    of people dropped out is the sum of 1 - P(alive); the actual one is the generator's.
    """
    users, signups = signing_up_over(DEMO_DAYS, 3_000, 1)
    factory = ShopperFactory(users, signups, 7, backfill_days=DEMO_DAYS, count=150_000, now=NOW)
    truth = factory.params
    alpha = truth.alpha / factory.time_scale
    start = NOW - timedelta(days=DEMO_DAYS)
    signup = dict(zip(users, signups, strict=True))
    person = {user: i for i, user in enumerate(users)}
    day = timedelta(days=1)
    expected = variance = 0.0
    dropped = 0
    for user, bought in purchases_of(factory, 150_000).items():
        birth = max(datetime.combine(signup[user], datetime.min.time(), UTC), start)
        waited = (bought[0] - birth) / day
        prior = BgNbdParams(r=truth.r + 1, alpha=alpha + waited, a=truth.a, b=truth.b)
        x, t_x, age = len(bought) - 1, (bought[-1] - bought[0]) / day, (NOW - bought[0]) / day
        alive = float(clv_model.probability_alive(prior, [x], [t_x], [age])[0])
        expected += 1 - alive
        variance += alive * (1 - alive)
        dropped += not factory.alive[person[user]]
    assert expected > 100
    assert abs(dropped - expected) < 0.1 * expected + 3 * math.sqrt(variance), (dropped, expected)


def test_the_events_number_about_the_count_and_end_about_at_now() -> None:
    """The count sets the expected events; the window's end and the count come within a few per cent."""
    for seed, (users, signups) in enumerate([signing_up_over(DEMO_DAYS, 4_000, 2), (USERS, LONG_AGO)]):
        count = 100_000
        factory = ShopperFactory(users, signups, seed, backfill_days=DEMO_DAYS, count=count, now=NOW)
        assert factory.window_events == count
        messages = factory.messages(count, NOW)
        assert 0.96 * count <= len(messages) <= count
        last = max(datetime.fromisoformat(json.loads(m["value"])["event_timestamp"]) for m in messages[-1000:])
        assert last > NOW - timedelta(days=0.04 * DEMO_DAYS)


def test_a_lifetime_value_fit_on_the_demos_history_finds_the_true_drop_out_with_intervals() -> None:
    """The demo's settings (10,000 people signing up over 84 days, 280,000 events, 80 % consenting),
    summarised as analytics.customers counts (purchase days; days from the first purchase's day),
    fitted by analytics.clv_model: the mean drop-out chance a / (a + b) near the truth, with
    intervals. (The rate r / alpha is not the population's: only people who bought are
    customers, and buying selects the faster ones.)"""
    users, signups = signing_up_over(DEMO_DAYS, 10_000, 3)
    factory = ShopperFactory(users, signups, 8, backfill_days=DEMO_DAYS, count=280_000, now=NOW)
    consenting = random.Random(4)
    x, t_x, age = [], [], []
    for moments in purchases_of(factory, 280_000).values():
        if consenting.random() < 0.8:
            days = sorted({m.date() for m in moments})
            x.append(len(days) - 1)
            t_x.append((days[-1] - days[0]).days)
            age.append((NOW.date() - days[0]).days)
    fit = clv_model.fit_bgnbd(x, t_x, age)
    truth = factory.params
    assert fit.intervals
    fitted = fit["a"].value / (fit["a"].value + fit["b"].value)
    assert fitted == pytest.approx(truth.mean_dropout, rel=clv_model.NO_INTERVAL_TOLERANCE)
