"""The history bench's shoppers (bench.traffic): BG/NBD lives drawn per person, as the population module
defines them, filling the history with the events asked for, at the weekly rhythm."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from bench import traffic
from bench.history import Result, growth_factor
from data_generators import population, shoppers
from data_generators.population import Parameters

DAYS = [date(2026, 1, 5) + timedelta(days=i) for i in range(140)]  # 20 whole weeks, from a Monday
PARAMS = Parameters()


@pytest.fixture(scope="module")
def clock() -> traffic.Clock:
    return traffic.Clock(DAYS)


def lives_and_sessions(clock: traffic.Clock, people: int, events: int, seed: int = 1) -> tuple[traffic.Lives, traffic.Sessions]:
    rng = np.random.default_rng(seed)
    lives = traffic.draw_lives(people, len(DAYS), events, PARAMS, rng)
    return lives, traffic.lifetime_sessions(lives, clock, PARAMS, rng)


def test_the_sessions_hold_the_events_asked_for(clock: traffic.Clock) -> None:
    for events in (100_000, 400_000):
        _lives, sessions = lives_and_sessions(clock, 10_000, events)
        assert sessions.events == pytest.approx(events, rel=0.03)


def test_every_person_buys_at_birth_and_visits_only_while_alive(clock: traffic.Clock) -> None:
    lives, sessions = lives_and_sessions(clock, 5_000, 100_000)
    at = clock.model(sessions.start_ms.astype(np.float64))
    first = np.full(len(lives.birth), np.inf)
    np.minimum.at(first, sessions.person, at)
    assert np.allclose(first, lives.birth, atol=1e-3)  # a millisecond, in days
    first_kind = {int(p): int(k) for p, k in zip(sessions.person[::-1], sessions.kind[::-1], strict=True)}
    assert set(first_kind.values()) == {2}
    assert (at <= np.minimum(lives.death, len(DAYS))[sessions.person] + 1e-3).all()


def test_repeat_purchases_follow_bg_nbd_as_the_population_module_draws_them(clock: traffic.Clock) -> None:
    """The thinning (a death Exponential(lam p) after birth, the purchases that keep the person a
    Poisson process at lam (1 - p)) against population.purchase_times' purchase-by-purchase draw on
    the same people: the same mean number of repeat purchases and the same share who left."""
    lives, sessions = lives_and_sessions(clock, 40_000, 2_000_000)
    purchases = np.bincount(sessions.person[sessions.kind == 2], minlength=len(lives.birth)) - 1
    rng = np.random.default_rng(2)
    lam = lives.people.lam * lives.scale
    drawn = [
        population.purchase_times(float(r), float(p), float(b), float(len(DAYS)), rng)
        for r, p, b in zip(lam, lives.people.dropout, lives.birth, strict=True)
    ]
    expected = np.array([len(t) for t in drawn])
    assert purchases.mean() == pytest.approx(expected.mean(), rel=0.05)
    assert (purchases > 0).mean() == pytest.approx((expected > 0).mean(), abs=0.01)


def test_sessions_end_in_purchases_and_carts_in_the_shoppers_shares(clock: traffic.Clock) -> None:
    _lives, sessions = lives_and_sessions(clock, 10_000, 400_000)
    visits = sessions.kind != 2
    carts = (sessions.kind[visits] == 1).mean()
    assert carts == pytest.approx(shoppers.CART_ABANDON / (1 - shoppers.CONVERSION), abs=0.01)
    assert sessions.views.mean() == pytest.approx(1 + shoppers.EXTRA_VIEWS, rel=0.02)


def test_the_weekly_rhythm_puts_more_sessions_on_sundays_than_mondays(clock: traffic.Clock) -> None:
    _lives, sessions = lives_and_sessions(clock, 10_000, 400_000)
    weekday = np.array([datetime.fromtimestamp(ms / 1000, UTC).weekday() for ms in sessions.start_ms[::5].tolist()])
    per_day = np.bincount(weekday, minlength=7)
    want = shoppers.WEEKDAY_TRAFFIC[6] / shoppers.WEEKDAY_TRAFFIC[0]
    assert per_day[6] / per_day[0] == pytest.approx(want, rel=0.1)


def test_extra_visits_keep_to_their_days_and_spare_the_reserved_people(clock: traffic.Clock) -> None:
    rng = np.random.default_rng(3)
    lives = traffic.draw_lives(5_000, len(DAYS), 100_000, PARAMS, rng)
    first, last = clock.midnight(DAYS[20]), clock.midnight(DAYS[120])
    extra = traffic.extra_sessions(lives, clock, first=first, last=last, skip=500, events=200_000, params=PARAMS, rng=rng)
    assert extra.events == pytest.approx(200_000, rel=0.03)
    assert extra.person.min() >= 500
    days = {date(1970, 1, 1) + timedelta(days=int(d)) for d in np.unique(extra.days())}
    assert min(days) >= DAYS[20] and max(days) < DAYS[120]
    at = clock.model(extra.start_ms.astype(np.float64))
    assert (at >= lives.birth[extra.person] - 1e-3).all()
    assert (at <= np.minimum(lives.death, len(DAYS))[extra.person] + 1e-3).all()


def test_a_session_is_staged_on_its_own_utc_day(clock: traffic.Clock) -> None:
    _lives, sessions = lives_and_sessions(clock, 200, 2_000)
    for line, ms, person in zip(
        traffic.sessions_csv(sessions).splitlines(), sessions.start_ms.tolist(), sessions.person.tolist(), strict=True
    ):
        day, n, start, *_ = line.split(",")
        assert date.fromisoformat(day) == datetime.fromtimestamp(ms / 1000, UTC).date()
        assert (int(n), int(start)) == (person, ms)


def test_growth_is_the_larger_size_over_the_smaller() -> None:
    results = [Result(0.5), Result(0.6)]
    assert growth_factor(results, "seconds") == pytest.approx(1.2)
    assert growth_factor(results, "pages") is None
    assert growth_factor([Result(None), Result(0.6)], "seconds") is None
