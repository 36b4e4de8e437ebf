"""Shoppers' sessions for the history bench (bench.history): BG/NBD people over the whole history.

The same model as ``data_generators.shoppers`` (the demo's traffic), drawn per person instead of
swept in time order, so that 400 days of it are drawn at once in numpy and the events made on
the server:

* a fixed population of ``people``: each a person of ``data_generators.population`` (purchase rate
  ``lam`` from Gamma(r, alpha), drop-out ``p`` from Beta(a, b), spend scale ``nu`` from Gamma(q,
  gamma): ``population.draw_people``);
* each is born (their first purchase, BG/NBD's time 0) at a uniform moment of the history; their
  purchases then come at rate ``lam`` and after each they leave for good with probability ``p``.
  Those are two independent Poisson processes (thinning): purchases after which they stay, at
  rate ``lam * (1 - p)``, and the one after which they leave, at rate ``lam * p``: so the death
  is Exponential(``lam * p``) after the birth and a purchase, and the others are a Poisson number
  of uniform moments in between (exactly ``population.purchase_times``' distribution);
* their sessions come at ``lam / CONVERSION`` while they are alive, as in shoppers: a share
  CONVERSION ends in a purchase (the purchases above), CART_ABANDON leaves a cart, the rest are
  page views only; 1 + Poisson(EXTRA_VIEWS) page views each, a purchase's amount from the person's
  Gamma-Gamma spend (``population.draw_amounts``);
* time runs at the weekly rhythm (``shoppers.rhythm_weight``: hour of day times weekday): the
  model's days are mapped onto the clock so that each hour gets its rhythm's share;
* ``count`` events fill the history by one factor on every rate (``scale``, found by bisection on
  the expected count over the people drawn), as shoppers' ``time_scale`` does: the history is the
  same BG/NBD population with alpha divided by it.

The larger size adds sessions to the days in between (bench.history.HistoryPlan): the same people,
in the same lives (alive from their birth to their death above), visit more often on those days
(``extra_sessions``), except the people reserved for erasure. The events of a session (its page
views, cart and purchase, 2 s plus an exponential of STEP_MEAN_S apart) are made by INSERT_DAY on
the server from the session's row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
from psycopg2 import sql

from data_generators import population
from data_generators.population import Parameters
from data_generators.shoppers import (
    CART_ABANDON,
    CONVERSION,
    EVENTS_PER_SESSION,
    EXTRA_VIEWS,
    STEP_MEAN_S,
    STEP_MIN_S,
    rhythm_weight,
)

# The staging table of sessions INSERT_DAY reads (dropped after the load).
SESSIONS_TABLE = "bench_history_sessions"
# Bisection steps for the rate factor: 60 halvings of [1e-6, 1e3] leave far less than an event.
SCALE_STEPS = 60
_MS_PER_HOUR = 3_600_000
# Events of a session that ends in a purchase (views, cart, purchase) and of one without (views,
# and a cart in CART_ABANDON's share of them), on average.
PURCHASE_EVENTS = 1 + EXTRA_VIEWS + 2
VISIT_EVENTS = 1 + EXTRA_VIEWS + CART_ABANDON / (1 - CONVERSION)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Lives:
    """The people and their lives, in model days from the history's start (rhythm time)."""

    people: population.People
    birth: Floats
    death: Floats  # inf when the person outlives the history
    scale: float


@dataclass(frozen=True)
class Sessions:
    """Sessions, one element each: whose (0-based person), when (ms since the epoch), how many page
    views, kind 0 (views only), 1 (a cart left) or 2 (a purchase), amount in cents (purchases)."""

    person: Ints
    start_ms: Ints
    views: Ints
    kind: Ints
    cents: Ints

    def __len__(self) -> int:
        return len(self.person)

    @property
    def events(self) -> int:
        return int(self.views.sum() + (self.kind >= 1).sum() + (self.kind == 2).sum())

    def days(self) -> Ints:
        """Each session's UTC day, as days since the epoch."""
        return self.start_ms // 86_400_000


class Clock:
    """The history's days mapped onto the clock at the weekly rhythm: model time ``u`` in [0,
    days) is the moment where the rhythm's cumulative share reaches u / days."""

    def __init__(self, days: Sequence[date]) -> None:
        start = datetime.combine(days[0], datetime.min.time(), UTC)
        hours = 24 * len(days)
        self.edges = np.array([start.timestamp() * 1000 + h * _MS_PER_HOUR for h in range(hours + 1)])
        weights = [rhythm_weight(start + timedelta(hours=h)) for h in range(hours)]
        self.share = np.concatenate(([0.0], np.cumsum(weights) / sum(weights)))
        self.length = float(len(days))

    def ms(self, u: Floats) -> Ints:
        """Model days -> ms since the epoch."""
        return np.asarray(np.interp(u / self.length, self.share, self.edges), dtype=np.float64).astype(np.int64)

    def midnight(self, day: date) -> float:
        """Model time of ``day``'s midnight (UTC)."""
        ms = datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000
        return float(self.model(np.array([ms]))[0])

    def model(self, ms: Floats) -> Floats:
        """ms since the epoch -> model days (the inverse of ``ms``)."""
        return np.asarray(np.interp(ms, self.edges, self.share) * self.length, dtype=np.float64)


def expected_events(lam: Floats, dropout: Floats, birth: Floats, *, wait: Floats, scale: float, length: float) -> float:
    """Expected events of people with these rates, births and unit-exponential waits for death,
    all rates times ``scale``: a purchase at birth, then purchases at lam and visits without one
    at lam * (1 - CONVERSION) / CONVERSION while alive."""
    rate = lam * scale
    death = birth + wait / np.maximum(rate * dropout, 1e-300)
    alive = np.minimum(death, length) - birth
    purchases = len(lam) + float((rate * alive).sum())
    visits = float((rate * alive).sum()) * (1 - CONVERSION) / CONVERSION
    return purchases * PURCHASE_EVENTS + visits * VISIT_EVENTS


def fit_scale(target: float, evaluate: Callable[[float], float]) -> float:
    """The rate factor whose expected events are ``target`` (bisection in log space; the expected
    count grows with the factor)."""
    lo, hi = np.log(1e-6), np.log(1e3)
    for _ in range(SCALE_STEPS):
        mid = (lo + hi) / 2
        if evaluate(float(np.exp(mid))) < target:
            lo = mid
        else:
            hi = mid
    return float(np.exp((lo + hi) / 2))


def draw_lives(people: int, days: int, events: int, params: Parameters, rng: np.random.Generator) -> Lives:
    """``people`` drawn from the population, born uniformly over ``days``, their rates scaled so that
    their sessions hold ``events`` events in expectation."""
    drawn = population.draw_people(people, params, rng)
    birth = rng.uniform(0.0, float(days), people)
    wait = rng.exponential(1.0, people)
    scale = fit_scale(events, lambda s: expected_events(drawn.lam, drawn.dropout, birth, wait=wait, scale=s, length=float(days)))
    death = birth + wait / np.maximum(drawn.lam * scale * drawn.dropout, 1e-300)
    return Lives(drawn, birth, np.where(death < days, death, np.inf), scale)


def _sessions_between(
    lo: Floats, hi: Floats, rate: Floats, *, share_purchase: float, rng: np.random.Generator
) -> tuple[Ints, Floats, Ints]:
    """A Poisson number of sessions per person at ``rate`` a day, uniform in (lo, hi) (empty where
    hi <= lo); each a purchase with probability ``share_purchase``, else a cart left with
    CART_ABANDON's share of the rest. Return (person, model time, kind)."""
    span = np.maximum(hi - lo, 0.0)
    counts = rng.poisson(rate * span)
    person = np.repeat(np.arange(len(counts)), counts)
    at = lo[person] + rng.random(len(person)) * span[person]
    roll = rng.random(len(person))
    cart = CART_ABANDON / (1 - CONVERSION)
    kind = np.where(roll < share_purchase, 2, np.where(roll < share_purchase + (1 - share_purchase) * cart, 1, 0))
    return person, at, kind


def lifetime_sessions(lives: Lives, clock: Clock, params: Parameters, rng: np.random.Generator) -> Sessions:
    """Every session of the people's lives within the history (see the module's docstring)."""
    length = clock.length
    lam = lives.people.lam * lives.scale
    end = np.minimum(lives.death, length)
    # Purchases after which the person stays, then the visits without a purchase.
    stay_p, stay_t, _ = _sessions_between(lives.birth, end, lam * (1 - lives.people.dropout), share_purchase=1.0, rng=rng)
    visit_p, visit_t, visit_k = _sessions_between(
        lives.birth, end, lam * (1 - CONVERSION) / CONVERSION, share_purchase=0.0, rng=rng
    )
    everyone = np.arange(len(lam))
    died = np.flatnonzero(np.isfinite(lives.death))
    person = np.concatenate((everyone, died, stay_p, visit_p))
    at = np.concatenate((lives.birth, lives.death[died], stay_t, visit_t))
    kind = np.concatenate((np.full(len(everyone) + len(died) + len(stay_p), 2), visit_k))
    return _finish(person, at, kind, lives=lives, clock=clock, params=params, rng=rng)


def extra_sessions(
    lives: Lives, clock: Clock, *, first: float, last: float, skip: int, events: int, params: Parameters, rng: np.random.Generator
) -> Sessions:
    """More visits of the same people in the same lives, only in model days [first, last) and not
    by people numbered below ``skip``: sessions at a rate proportional to each one's lam, ``events``
    events in expectation, a share CONVERSION of them purchases."""
    lo = np.maximum(lives.birth, first)
    hi = np.minimum(np.minimum(lives.death, clock.length), last)
    hi[:skip] = lo[:skip]
    weight = (lives.people.lam * np.maximum(hi - lo, 0.0)).sum()
    per_lam = events / EVENTS_PER_SESSION / weight if weight > 0 else 0.0
    person, at, kind = _sessions_between(lo, hi, lives.people.lam * per_lam, share_purchase=CONVERSION, rng=rng)
    return _finish(person, at, kind, lives=lives, clock=clock, params=params, rng=rng)


def _finish(
    person: Ints, at: Floats, kind: Ints, *, lives: Lives, clock: Clock, params: Parameters, rng: np.random.Generator
) -> Sessions:
    """Sessions in time order, on the clock, with page views and the purchases' amounts."""
    order = np.argsort(at, kind="stable")
    person, at, kind = person[order], at[order], kind[order]
    views = 1 + rng.poisson(EXTRA_VIEWS, len(person))
    cents = np.zeros(len(person), dtype=np.int64)
    buying = kind == 2
    euros = population.draw_amounts(lives.people.nu[person[buying]], params, rng)
    cents[buying] = np.clip(np.rint(euros * 100), 100, 1_000_000).astype(np.int64)
    return Sessions(person.astype(np.int64), clock.ms(at), views.astype(np.int64), kind.astype(np.int64), cents)


def sessions_csv(sessions: Sessions) -> str:
    """The sessions as COPY's CSV rows: day, person number, start (ms since the epoch), views, kind, cents."""
    epoch = date(1970, 1, 1).toordinal()
    days = {int(d): date.fromordinal(epoch + int(d)).isoformat() for d in np.unique(sessions.days())}
    rows = zip(
        [days[d] for d in sessions.days().tolist()],
        sessions.person.tolist(),
        sessions.start_ms.tolist(),
        sessions.views.tolist(),
        sessions.kind.tolist(),
        sessions.cents.tolist(),
        strict=True,
    )
    return "".join(f"{d},{p},{t},{v},{k},{c}\n" for d, p, t, v, k, c in rows)


# One day of sessions made into events on the server: a session's events are its page views,
# then its cart (kind >= 1), then its purchase (kind 2), STEP_MIN_S plus an exponential of
# STEP_MEAN_S apart; a session that would end after midnight begins earlier instead (an event's
# day is its timestamp's). Device, browser, page and product as the uniform generator made them;
# ids are UUIDv7 of the event's time, Kafka partitions by user and offsets in time order.
INSERT_DAY = sql.SQL("""
INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, metadata,
                        kafka_partition, kafka_offset, ingested_at, created_at)
SELECT (substr(e.ms, 1, 8) || '-' || substr(e.ms, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16))::uuid,
       e.user_id, e.kind, e.ts, %(day)s, e.amount,
       jsonb_build_object(
           'page', CASE WHEN e.kind = 'purchase' THEN '/checkout/confirmation'
                        ELSE '/' || e.category || '/product/' || e.product END,
           'device', (%(devices)s::text[])[1 + floor(random() * cardinality(%(devices)s::text[]))::int],
           'browser', (%(browsers)s::text[])[1 + floor(random() * cardinality(%(browsers)s::text[]))::int]
       ) || CASE WHEN e.kind = 'page_view' THEN '{{}}'::jsonb ELSE jsonb_build_object('product_id', e.product) END,
       (hashtext(e.user_id::text) & 2147483647) %% %(partitions)s,
       (%(offset)s + e.i) / %(partitions)s,
       e.ingested,
       e.ingested
FROM (
    SELECT t.*, lpad(to_hex(floor(extract(epoch FROM t.ts) * 1000)::bigint), 12, '0') AS ms,
           t.ts + random() * make_interval(secs => %(delay)s) AS ingested,
           row_number() OVER (ORDER BY t.ts) AS i
    FROM (
        SELECT o.user_id, o.kind, o.amount, o.category, o.product,
               least(o.start, ((%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC') - make_interval(secs => max(o.offset_s) OVER (PARTITION BY o.sid) + 0.001))
               + make_interval(secs => o.offset_s) AS ts
        FROM (
            SELECT s.sid, u.user_id, s.start, s.category, s.product,
                   CASE WHEN g.pos <= s.views THEN 'page_view' WHEN g.pos = s.views + 1 THEN 'add_to_cart' ELSE 'purchase' END
                       AS kind,
                   CASE WHEN s.kind = 2 AND g.pos = s.views + 2 THEN s.cents / 100.0 END AS amount,
                   sum(CASE WHEN g.pos = 1 THEN 0 ELSE %(step_min)s - ln(1 - random()) * %(step_mean)s END)
                       OVER (PARTITION BY s.sid ORDER BY g.pos) AS offset_s
            FROM (
                SELECT row_number() OVER () AS sid, s.n, s.views, s.kind, s.cents,
                       to_timestamp(s.start_ms / 1000.0) AS start,
                       (%(categories)s::text[])[1 + floor(random() * cardinality(%(categories)s::text[]))::int] AS category,
                       1 + floor(random() * 4999)::int AS product
                FROM {sessions} AS s WHERE s.day = %(day)s
            ) AS s
            JOIN {users} AS u ON u.n = s.n
            CROSS JOIN LATERAL generate_series(1, s.views + (s.kind >= 1)::int + (s.kind = 2)::int) AS g(pos)
        ) AS o
    ) AS t
) AS e
ORDER BY e.ts
""")


def insert_day(users_table: str) -> sql.Composed:
    """INSERT_DAY reading the sessions and the numbered users ``users_table``."""
    return INSERT_DAY.format(sessions=sql.Identifier(SESSIONS_TABLE), users=sql.Identifier(users_table))


STEP_PARAMS = {"step_min": STEP_MIN_S, "step_mean": STEP_MEAN_S}
