"""Events of shoppers: sessions of people drawn from data_generators.population, with a weekly rhythm.

``generate_events --behaviour shoppers`` (the demo's mode) makes these instead of the uniform mix:
each user is a person of the BG/NBD population (``population.people_for``: the same user is the
same person in every run and process). People arrive in sessions, at a rate proportional to
their purchase rate (a session ends in a purchase with probability CONVERSION, so purchases
keep the person's rate); a session is some page views, in a share of sessions an add-to-cart,
and in purchasing ones the purchase after it, seconds to minutes apart; its amount is drawn
from the person's Gamma-Gamma spend. After each repeat purchase (not the first: the BG/NBD's
convention, which the lifetime-value fit assumes) the person stops coming back with their
drop-out probability. No session starts before the person's signup.

With ``backfill_days`` the sessions sweep the window from its start to now in time order, as
busy as the weekly rhythm (HOURLY_TRAFFIC times WEEKDAY_TRAFFIC) says, so a person's later
session is always produced later. The sweep's pace is fixed in time: sessions are drawn from
everybody by rate, and the dead, the busy and the not-yet-signed-up simply make none, so the
history from each person's signup (or the window's start) is the BG/NBD process itself.
``count`` sets one factor on every purchase rate (``time_scale``), chosen before the first
session so that the expected number of events in the window is ``count`` (``expected_events``);
the stored history is then the same BG/NBD population with alpha divided by it. The run stops at
``count`` events or at the window's end, whichever comes first (``finished``): within a few per
cent of each other, unless the population cannot make ``count`` events even at MAX_TIME_SCALE
(logged). Without a count the window is filled at the population's own rates. Without
``backfill_days`` every session ends now.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from data_generators import population
from data_generators.events import HOURLY_TRAFFIC, METADATA_VARIANTS, EventFactory
from data_generators.population import Parameters

logger = logging.getLogger(__name__)

# Who is who does not depend on --seed (which varies the sessions): a user stays one person.
POPULATION_SEED = 28
# Relative traffic per weekday (Monday first): busier at the weekend, as web shops are.
WEEKDAY_TRAFFIC = (1.0, 0.95, 0.95, 1.0, 1.05, 1.2, 1.3)
# Share of sessions that end in a purchase, and of those that leave a cart behind: a person's
# sessions come at lam / CONVERSION a day, about 12 visits per purchase.
CONVERSION = 0.08
CART_ABANDON = 0.12
# Page views per session: 1 + Poisson(EXTRA_VIEWS); seconds between two events of a session:
# 2 s plus an exponential of mean STEP_MEAN_S (seconds to minutes).
EXTRA_VIEWS = 3.0
STEP_MIN_S = 2.0
STEP_MEAN_S = 40.0
EVENTS_PER_SESSION = 1 + EXTRA_VIEWS + CONVERSION * 2 + CART_ABANDON
# Amounts are kept to whole cents between these (the Gamma's far tail is no order a shop sees).
MIN_AMOUNT_CENTS, MAX_AMOUNT_CENTS = 100, 1_000_000
# Events drawn at a time (numpy's per-call cost spread over them); a live run at a low --rate
# stamps an event at most this many events after its session was drawn.
BATCH = 2_000
# Batches in a row without a session (everyone left busy, dropped out or not signed up yet)
# after which a call returns what it has.
IDLE_BATCHES = 50
# The picking table skips the dead until their weight reaches this share, then is rebuilt.
REBUILD_DEAD_SHARE = 0.05
# The largest factor on the purchase rates a count may ask for: beyond it people would buy many
# times an hour, their sessions would collide, and the few who never drop out would make it all.
MAX_TIME_SCALE = 1_000.0
# Bisection steps for time_scale, halving a log-range of ln(MAX_TIME_SCALE / MIN_TIME_SCALE) = 25:
# 25 steps leave it within a relative 1e-6 of the solution, far below the sampling noise of any
# count (each step is a pass over the people: 40 ms for a million).
MIN_TIME_SCALE = 1e-8
SCALE_STEPS = 25
_MS_PER_DAY = 86_400_000
_KINDS = ("page_view", "add_to_cart", "purchase")
# "SS.mmm" for every millisecond of a minute: a timestamp is its minute's prefix and one of these.
_MINUTES = [f"{m:02d}:" for m in range(60)]
_SECONDS = [f"{ms // 1000:02d}.{ms % 1000:03d}+00:00" for ms in range(60_000)]


def rhythm_weight(moment: datetime) -> float:
    """Relative traffic at ``moment`` (UTC): the hour's times the weekday's."""
    moment = moment.astimezone(UTC)
    return HOURLY_TRAFFIC[moment.hour] * WEEKDAY_TRAFFIC[moment.weekday()]


class ShopperFactory(EventFactory):
    """Sessions of BG/NBD shoppers as produce_batch messages (see the module's docstring)."""

    def __init__(
        self,
        user_ids: list[str],
        signups: Sequence[date] | None,
        seed: int | None,
        *,
        backfill_days: float = 0.0,
        count: int | None = None,
        now: datetime | None = None,
        params: Parameters | None = None,
    ) -> None:
        self.params = params or Parameters()
        self.np_rng = np.random.default_rng(seed)
        self._dead: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self.count = count
        self.backfill_days = backfill_days
        self.produced = 0
        # Who has bought (their next purchase is a repeat one, after which they may drop out).
        self._bought: set[str] = set()
        # The backfill's progress: the share of the window's rhythm swept.
        self._swept = 0.0
        super().__init__(user_ids, seed)
        self.set_users(user_ids, signups)
        self._window(now or datetime.now(UTC))

    # -- the people ------------------------------------------------------------------------

    @property
    def user_ids(self) -> list[str]:
        return self._user_ids

    @user_ids.setter
    def user_ids(self, ids: list[str]) -> None:
        # EventFactory's constructor sets the ids; set_users maps them onto people.
        self._user_ids = ids

    def set_users(self, user_ids: list[str], signups: Sequence[date] | None) -> None:
        """Map the users onto people; a user who dropped out stays out."""
        self._user_ids = user_ids
        self.people = population.people_for(user_ids, self.params, POPULATION_SEED)
        # Milliseconds since the epoch of each signup's midnight (UTC); none known: no bound.
        if signups is None:
            self.signup_ms = np.zeros(len(user_ids), dtype=np.int64)
        else:
            days = np.array([d.toordinal() - date(1970, 1, 1).toordinal() for d in signups], dtype=np.int64)
            self.signup_ms = days * _MS_PER_DAY
        self.alive = np.array([u not in self._dead for u in user_ids], dtype=bool)
        self.bought = np.array([u in self._bought for u in user_ids], dtype=bool)
        # When each person's last session ended (ms since the epoch): the next starts after it.
        self.free_ms = np.zeros(len(user_ids), dtype=np.int64)
        self._rebuild()

    def _rebuild(self) -> None:
        weights = np.where(self.alive, self.people.lam, 0.0)
        self._cumulative = np.cumsum(weights)
        self._total = float(self._cumulative[-1]) if len(weights) else 0.0
        self._dead_weight = 0.0

    def _window(self, now: datetime) -> None:
        """The backfill window's hours and their cumulative share of the rhythm; the time scale."""
        self.time_scale = 1.0
        self.window_events = 0
        if not self.backfill_days:
            return
        end_ms = int(now.timestamp() * 1000)
        start_ms = end_ms - int(self.backfill_days * _MS_PER_DAY)
        edges = list(range(start_ms - start_ms % 3_600_000 + 3_600_000, end_ms, 3_600_000))
        edges = [start_ms, *edges, end_ms]
        weights = [(hi - lo) * rhythm_weight(datetime.fromtimestamp(lo / 1000, UTC)) for lo, hi in itertools.pairwise(edges)]
        self._end_ms = end_ms
        self._edges = np.array(edges, dtype=np.float64)
        self._share = np.concatenate(([0.0], np.cumsum(weights) / sum(weights)))
        # Each person's time in the window, in days of the window's mean rhythm (the sweep's clock):
        # from their signup, or the window's start, to its end.
        self.observed_days = self.backfill_days * (1.0 - np.interp(self.signup_ms, self._edges, self._share))
        if self.count is not None:
            self.time_scale = self._solve_scale(self.count)
        self.window_events = round(self.expected_events(self.time_scale))

    def expected_events(self, scale: float) -> float:
        """The events the window's sessions make on average with every purchase rate times ``scale``.

        A person of rate lam and drop-out chance p observed t days buys first at rate lam, and
        from then on is the BG/NBD process: (1/p)(1 - exp(-lam p s)) repeat purchases on average
        in the s days after the first purchase. Averaged over the first purchase's moment:
        E[purchases] = (1 - e^-u) + ((1 - e^-u) - (e^-up - e^-u) / (1 - p)) / p with u = lam t.
        Sessions are purchases / CONVERSION (each session buys with that chance, and only a
        purchase ends a person's visits), EVENTS_PER_SESSION events each.
        """
        u = self.people.lam * scale * self.observed_days
        p = np.clip(self.people.dropout, 1e-9, 1.0 - 1e-9)
        first = -np.expm1(-u)
        # e^-up - e^-u = -e^-up (e^-u(1-p) - 1): expm1 keeps it exact as p nears 1.
        repeat = (first + np.exp(-u * p) * np.expm1(-u * (1.0 - p)) / (1.0 - p)) / p
        purchases = float(np.sum(first + np.maximum(repeat, 0.0)))
        return purchases / CONVERSION * EVENTS_PER_SESSION

    def _solve_scale(self, count: int) -> float:
        """The factor on the purchase rates that makes ``count`` events expected (bisection in
        log scale: the expectation grows with the scale); MAX_TIME_SCALE if it cannot."""
        if count <= 0:
            return MIN_TIME_SCALE
        most = self.expected_events(MAX_TIME_SCALE)
        if most < count:
            logger.warning(
                "shoppers: %d events asked, but these people make about %d in %.1f days even at %.0fx their "
                "purchase rates: the run ends at the window's end",
                count,
                round(most),
                self.backfill_days,
                MAX_TIME_SCALE,
            )
            return MAX_TIME_SCALE
        low, high = math.log(MIN_TIME_SCALE), math.log(MAX_TIME_SCALE)
        for _ in range(SCALE_STEPS):
            middle = (low + high) / 2
            if self.expected_events(math.exp(middle)) < count:
                low = middle
            else:
                high = middle
        return math.exp((low + high) / 2)

    def finished(self) -> bool:
        """True once a backfill has reached now and handed out its last event (live mode never finishes)."""
        return self._window_done() and not self._pending

    def _window_done(self) -> bool:
        return bool(self.backfill_days) and self._swept >= 1.0

    # -- the sessions ----------------------------------------------------------------------

    def messages(self, n: int, now: datetime) -> list[dict[str, Any]]:
        """The next ``n`` events, in sessions (a session cut at the end goes on in the next call)."""
        idle = 0
        while len(self._pending) < n and self._total > 0 and idle < IDLE_BATCHES and not self._window_done():
            batch = self._sessions(max(n - len(self._pending), BATCH), now)
            idle = 0 if batch else idle + 1
            self._pending.extend(batch)
        out, self._pending = self._pending[:n], self._pending[n:]
        self.produced += len(out)
        return out

    def _sessions_per_share(self) -> float:
        """Sessions the picking table's people make per unit of the window's rhythm share: a pace
        fixed in time (the dead still in the table, the busy and the not-yet-signed-up make none)."""
        return self._total * self.time_scale / CONVERSION * self.backfill_days

    def _starts(self, k: int, now: datetime) -> npt.NDArray[np.int64]:
        """Session starts (ms since the epoch, ascending) for ``k`` sessions drawn from the table."""
        if not self.backfill_days:
            return np.full(k, int(now.timestamp() * 1000), dtype=np.int64)
        first = self._swept
        last = min(first + k / self._sessions_per_share(), 1.0)
        self._swept = last
        shares = np.sort(self.np_rng.uniform(first, last, k))
        return np.interp(shares, self._share, self._edges).astype(np.int64)

    def _sessions(self, events: int, now: datetime) -> list[dict[str, Any]]:
        """About ``events`` events of whole sessions, as messages."""
        rng = self.np_rng
        k = max(1, int(events / EVENTS_PER_SESSION))
        if self.backfill_days:
            # No more sessions than the rest of the window holds at the sweep's pace.
            k = max(1, min(k, math.ceil((1.0 - self._swept) * self._sessions_per_share())))
        # Sorted draws find their people in one pass over the table, then are shuffled back.
        who = np.searchsorted(self._cumulative, np.sort(rng.uniform(0, self._total, k)), side="right")
        who = np.minimum(who, len(self._user_ids) - 1)
        rng.shuffle(who)
        roll = rng.random(k)
        kind = np.where(roll < CONVERSION, 2, np.where(roll < CONVERSION + CART_ABANDON, 1, 0))
        views = 1 + rng.poisson(EXTRA_VIEWS, k)
        sizes = views + (kind >= 1) + (kind == 2)
        total = int(sizes.sum())
        first_event = np.cumsum(sizes) - sizes
        last_event = first_event + sizes - 1
        steps = STEP_MIN_S * 1000 + rng.exponential(STEP_MEAN_S * 1000, total)
        steps[first_event] = 0.0
        offsets = np.cumsum(steps)
        offsets -= np.repeat(offsets[first_event], sizes)
        if not self.backfill_days:
            # Live: each session ends now, so no event is stamped in the future.
            offsets -= np.repeat(offsets[last_event], sizes)
        durations = (offsets[last_event] - offsets[first_event]).astype(np.int64)
        starts = self._starts(k, now) + offsets[first_event].astype(np.int64)
        if self.backfill_days:
            # A session begun just before now would end after it: it begins earlier instead.
            starts = np.minimum(starts, self._end_ms - durations)
        ends = starts + durations
        keep = self._keep(who, kind, starts, ends, rng)
        if not keep.any():
            return []
        np.maximum.at(self.free_ms, who[keep], ends[keep])
        rows = np.repeat(keep, sizes)
        session = np.repeat(np.arange(k), sizes)[rows]
        stamps = starts[session] + (offsets[rows] - offsets[first_event][session]).astype(np.int64)
        position = np.arange(total)[rows] - first_event[session]
        codes = np.minimum(np.maximum(position - views[session] + 1, 0), 2)
        endings = self._endings(codes, who[session], rng)
        return self._format(who[session], stamps, endings, now)

    def _keep(
        self,
        who: npt.NDArray[np.int64],
        kind: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        rng: np.random.Generator,
    ) -> npt.NDArray[np.bool_]:
        """The sessions that happen: of people still active, after their signup, not while they
        are in another session; a purchase may end a person's visits, and their later sessions."""
        keep = self.alive[who] & (starts >= self.signup_ms[who])
        if self.backfill_days:
            # (A live run is time-lapse: a person's sessions of different moments all end now.)
            keep &= starts > self.free_ms[who]
        order = np.lexsort((starts, who))
        while True:  # one person's overlapping sessions of this batch: the later ones go
            kept = order[keep[order]]
            clash = np.flatnonzero((who[kept][1:] == who[kept][:-1]) & (starts[kept][1:] <= ends[kept][:-1]))
            if not len(clash):
                break
            keep[kept[clash + 1]] = False
        buys = keep & (kind == 2)
        # A person's first purchase cannot end their visits (BG/NBD: their "birth"): the earliest
        # of this batch's purchases of someone who has not bought before.
        buying = order[buys[order]]
        people, earliest = np.unique(who[buying], return_index=True)
        immune = buying[earliest[~self.bought[people]]]
        self._buy(people)
        dies = buys & (rng.random(len(who)) < self.people.dropout[who])
        dies[immune] = False
        for j in np.flatnonzero(dies)[np.argsort(starts[dies], kind="stable")]:
            if keep[j]:
                keep &= ~((who == who[j]) & (starts > starts[j]))
                self._die(int(who[j]))
        return keep

    def _buy(self, people: npt.NDArray[np.int64]) -> None:
        new = people[~self.bought[people]]
        self.bought[new] = True
        self._bought.update(self._user_ids[i] for i in new.tolist())

    def _die(self, person: int) -> None:
        self.alive[person] = False
        self._dead.add(self._user_ids[person])
        self._dead_weight += float(self.people.lam[person])
        if self._dead_weight > REBUILD_DEAD_SHARE * self._total:
            self._rebuild()

    def _endings(self, codes: npt.NDArray[np.int64], people: npt.NDArray[np.int64], rng: np.random.Generator) -> list[str]:
        """Each event's JSON after its user_id: type, amount (purchases: the person's spend), metadata."""
        variant = rng.integers(0, METADATA_VARIANTS, len(codes))
        endings: list[str] = self._kind_endings[codes * METADATA_VARIANTS + variant].tolist()
        buying = np.flatnonzero(codes == 2)
        if len(buying):
            euros = population.draw_amounts(self.people.nu[people[buying]], self.params, rng)
            cents = np.clip(np.rint(euros * 100), MIN_AMOUNT_CENTS, MAX_AMOUNT_CENTS).astype(np.int64).tolist()
            for i, c, v in zip(buying.tolist(), cents, variant[buying].tolist(), strict=True):
                endings[i] = (
                    f',"event_type":"purchase","amount":"{c // 100}.{c % 100:02d}","metadata":{self.purchase_metadata[v]}}}'
                )
        return endings

    @property
    def _kind_endings(self) -> npt.NDArray[np.object_]:
        """Pre-serialised endings, METADATA_VARIANTS per event type (purchases get their amount)."""
        if not hasattr(self, "_kind_endings_cache"):
            self._kind_endings_cache = np.array(
                [
                    f',"event_type":"{kind}","amount":null,"metadata":{self._metadata_json(kind)}}}'
                    for kind in _KINDS
                    for _ in range(METADATA_VARIANTS)
                ],
                dtype=object,
            )
        return self._kind_endings_cache

    def _format(
        self, people: npt.NDArray[np.int64], stamps: npt.NDArray[np.int64], endings: list[str], now: datetime
    ) -> list[dict[str, Any]]:
        """The wire format, one f-string per event: a timestamp is its minute's text and its milliseconds'.

        The batch's people are looked up once each, in index order: a million users' ids are 60 MB
        of small objects, and one visit per person in address order instead of one (two, with a
        list of keys beside them) per event at random was a quarter of the generator's time. The
        key is encoded from the same string.
        """
        minutes, ms = np.divmod(stamps, 60_000)
        base = int(minutes.min())
        which = minutes - base
        hours = {
            h: f"{datetime.fromtimestamp(h * 3600, UTC):%Y-%m-%dT%H:}" for h in range(base // 60, int(minutes.max()) // 60 + 1)
        }
        prefixes = [hours[m // 60] + _MINUTES[m % 60] for m in range(base, int(minutes.max()) + 1)]
        head = self._id_prefix(now)
        first = self._take_sequence(len(stamps))
        batch_people, person = np.unique(people, return_inverse=True)
        strs = self._user_ids
        ids = [strs[u] for u in batch_people.tolist()]
        keys = [u.encode() for u in ids]
        seconds = _SECONDS
        return [
            {
                "key": keys[p],
                "value": f'{{"event_timestamp":"{prefixes[w]}{seconds[s]}","event_id":"{head}{seq:012x}",'
                f'"user_id":"{ids[p]}"{ending}'.encode(),
            }
            for seq, p, w, s, ending in zip(
                range(first, first + len(stamps)), person.tolist(), which.tolist(), ms.tolist(), endings, strict=True
            )
        ]
