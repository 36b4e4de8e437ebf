"""Seed Faker users: personal data into ``users_pii``, country and signup date into ``users_public``.

Faker is slow per call (tens of microseconds for an address), so it fills small per-locale pools
of names, streets and cities once, and users are drawn from those pools: a million users load
in seconds with COPY. ``--count N`` makes sure N users exist: re-running adds only the missing
ones, whoever created the others (users are counted, not numbered). The n-th user a seed makes
has a UUID derived from the seed and n (``generated_user_id``), so a run is reproducible.

``--consent-share F`` (0 to 1, default 1) gives that share of the users a run adds an analytics
consent grant in ``consent_ledger`` (source ``generator``), written in the same transaction as
the users. Which users consent follows from the seed and the user's number alone, so re-runs and
other chunk sizes pick the same people, and a larger share keeps the smaller share's people.
The grant is effective from the user's signup (midnight UTC of ``signup_date``), and every
signup lies before the longest history ``generate_events --backfill-days`` can make: with
``CONSENT_MODE=required`` no event the generator makes for a consenting user is dropped.
Users that already exist are not given consent by a re-run.

``--signup-days N`` spreads the signups of the users a run adds over the last N days instead
(today included), so that signup-week cohorts (analytics.cohorts, the daily report's retention
heatmap) are recent and filled: ``make demo`` uses it. Events must then respect the signups:
``generate_events --behaviour shoppers`` starts no session before a person's signup (so none
before their grant); the uniform behaviour ignores signups, and with ``CONSENT_MODE=required`` its
events before a grant are dropped and counted as such.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import unicodedata
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

import psycopg2.extensions
from faker import Faker

from core import cli, consent, db, locks
from core.config import Settings
from data_generators.events import MAX_BACKFILL_DAYS

# EU countries with a Faker locale, weighted roughly by online shoppers.
COUNTRIES: dict[str, tuple[str, int]] = {
    "DE": ("de_DE", 20), "FR": ("fr_FR", 16), "IT": ("it_IT", 12), "ES": ("es_ES", 11),
    "NL": ("nl_NL", 8), "PL": ("pl_PL", 8), "SE": ("sv_SE", 4), "BE": ("nl_BE", 4),
    "AT": ("de_AT", 4), "CZ": ("cs_CZ", 3), "IE": ("en_IE", 3), "PT": ("pt_PT", 3),
    "DK": ("da_DK", 2), "FI": ("fi_FI", 2),
}  # fmt: skip
# Reserved example domains: generated addresses can never reach a real person.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
POOL_SIZE = 300
# One transaction per chunk: Ctrl+C loses at most the chunk in flight, and nothing half-written.
CHUNK = 100_000
# The longest a seeder waits for another one to finish (kept under half the statement timeout).
SEED_LOCK_WAIT_MS = 300_000
SIGNUP_WINDOW_DAYS = 3 * 365
# Signups end this many days before the day the users are made: generate_events stamps events at
# most MAX_BACKFILL_DAYS back, so every event of a user comes after the signup and after the
# consent granted at it (CONSENT_MODE=required drops events before a user's grant).
SIGNUP_BEFORE_HISTORY_DAYS = MAX_BACKFILL_DAYS + 1
CONSENT_SOURCE = "generator"


@dataclass(frozen=True)
class LocalePool:
    first_names: list[str]
    last_names: list[str]
    streets: list[str]
    cities: list[str]
    postcodes: list[str]


def build_pools(seed: int) -> dict[str, LocalePool]:
    """Fill each country's pools from its Faker locale, deterministically for ``seed``."""
    pools = {}
    for country, (locale, _weight) in COUNTRIES.items():
        fake = Faker(locale)
        fake.seed_instance(seed)
        pools[country] = LocalePool(
            first_names=[fake.first_name() for _ in range(POOL_SIZE)],
            last_names=[fake.last_name() for _ in range(POOL_SIZE)],
            streets=[fake.street_address().replace("\n", " ") for _ in range(POOL_SIZE)],
            cities=[fake.city() for _ in range(POOL_SIZE // 3)],
            postcodes=[fake.postcode() for _ in range(POOL_SIZE // 3)],
        )
    return pools


_NOT_EMAIL_CHARS = re.compile(r"[^a-z0-9]+")


def email_part(name: str) -> str:
    """ASCII, lower-case local-part fragment of a name ("Müller-Lüdenscheidt" -> "mullerludenscheidt")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_EMAIL_CHARS.sub("", ascii_name) or "user"


def generated_user_id(seed: int, number: int) -> str:
    """The UUID (version 4 in form) of the ``number``-th user made with ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{number}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def consents(seed: int, number: int, share: float) -> bool:
    """Whether the ``number``-th user made with ``seed`` grants analytics consent, for ``share``.

    A hash of (seed, number) rather than the chunk's random stream: the answer does not depend on
    chunking or on what else is drawn, and the people of a smaller share are among a larger one's.
    """
    digest = hashlib.blake2b(f"consent:{seed}:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


class ChunkRows(NamedTuple):
    """CSV text of one chunk of new users, one per table they are written to."""

    pii: str
    public: str
    consent: str


def generate_rows(
    first_id: int,
    last_id: int,
    pools: dict[str, LocalePool],
    seed: int,
    today: date,
    *,
    consent_share: float = 1.0,
    signup_days: int | None = None,
) -> ChunkRows:
    """CSV text for users_pii, users_public and consent_ledger for users number first_id..last_id
    (inclusive). Signups lie SIGNUP_WINDOW_DAYS before the longest event history, or, with
    ``signup_days``, in the last ``signup_days`` days up to ``today`` (the same draw: the other
    columns do not change).

    The generator is seeded by (seed, first_id); chunks start at fixed numbers, so a user's data
    does not depend on how often the command ran.
    """
    rng = random.Random(seed * 1_000_003 + first_id)
    countries = rng.choices(list(COUNTRIES), [weight for _locale, weight in COUNTRIES.values()], k=last_id - first_id + 1)
    rand = rng.random
    pii: list[str] = []
    public: list[str] = []
    grants: list[str] = []
    for number, country in zip(range(first_id, last_id + 1), countries, strict=True):
        user_id = generated_user_id(seed, number)
        pool = pools[country]
        first = pool.first_names[int(rand() * len(pool.first_names))]
        last = pool.last_names[int(rand() * len(pool.last_names))]
        domain = EMAIL_DOMAINS[int(rand() * len(EMAIL_DOMAINS))]
        address = (
            f"{pool.streets[int(rand() * len(pool.streets))]}, {pool.postcodes[int(rand() * len(pool.postcodes))]} "
            f"{pool.cities[int(rand() * len(pool.cities))]}"
        )
        if signup_days is None:
            signup = today - timedelta(days=SIGNUP_BEFORE_HISTORY_DAYS + int(rand() * SIGNUP_WINDOW_DAYS))
        else:
            signup = today - timedelta(days=int(rand() * signup_days))
        email = f"{email_part(first)}.{email_part(last)}.{number}@{domain}"
        pii.append(f"{user_id},{_csv(email)},{_csv(f'{first} {last}')},{_csv(address)}\n")
        public.append(f"{user_id},{country},{signup.isoformat()}\n")
        if consents(seed, number, consent_share):
            grants.append(f"{user_id},{consent.ANALYTICS},true,{signup.isoformat()}T00:00:00+00:00,{CONSENT_SOURCE}\n")
    return ChunkRows("".join(pii), "".join(public), "".join(grants))


def _csv(value: str) -> str:
    """One CSV field, quoted (names and addresses contain commas and quotes)."""
    return '"' + value.replace('"', '""') + '"'


def load_chunk(conn: psycopg2.extensions.connection, rows: ChunkRows) -> None:
    """COPY one chunk of new users and their consent grants in one transaction: a user is never
    stored without the consent the run meant to give (the ledger's trigger sets recorded_at)."""
    with conn, conn.cursor() as cur:
        cur.copy_expert("COPY users_pii (user_id, email, full_name, address) FROM STDIN WITH (FORMAT csv)", io.StringIO(rows.pii))
        cur.copy_expert(
            "COPY users_public (user_id, country, signup_date) FROM STDIN WITH (FORMAT csv)", io.StringIO(rows.public)
        )
        if rows.consent:
            cur.copy_expert(
                "COPY consent_ledger (user_id, purpose, granted, effective_at, source) FROM STDIN WITH (FORMAT csv)",
                io.StringIO(rows.consent),
            )


class SeedResult(NamedTuple):
    """What a run did: users added, users that existed before, and consent grants recorded."""

    added: int
    existing: int
    consented: int


def seed_users(
    settings: Settings,
    count: int,
    seed: int,
    show_progress: bool = True,
    consent_share: float = 1.0,
    *,
    signup_days: int | None = None,
) -> SeedResult:
    """Make sure ``count`` users exist, ``consent_share`` of the new ones with analytics consent;
    with ``signup_days``, the new ones signed up in the last ``signup_days`` days.

    Generation (Python) and loading (PostgreSQL) overlap: one chunk is generated while the
    previous one is copied.
    """
    # Held until the end: two seeders at once would make the same new users. A lock only the owner
    # may take (sql/030), on a connection of its own; a second seeder waits, bounded, then says so.
    with (
        locks.held(
            settings.database,
            locks.USER_SEED,
            role=None,
            application_name="generate_users",
            wait_ms=locks.wait_ms_for(settings.database, SEED_LOCK_WAIT_MS),
        ),
        db.connection(settings.database, application_name="generate_users") as conn,
    ):
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM users_pii")
            row = cur.fetchone()
            existing = int(row[0]) if row else 0
        conn.commit()
        if existing >= count:
            return SeedResult(0, existing, 0)
        pools = build_pools(seed)
        today = cli.today_utc()
        progress = cli.Progress("users", total=count - existing)
        chunks = [(start, min(start + CHUNK - 1, count)) for start in range(existing + 1, count + 1, CHUNK)]
        consented = 0
        with ThreadPoolExecutor(max_workers=1) as loader:
            pending: Future[None] | None = None
            for start, end in chunks:
                rows = generate_rows(start, end, pools, seed, today, consent_share=consent_share, signup_days=signup_days)
                consented += rows.consent.count("\n")
                if pending is not None:
                    pending.result()
                    if show_progress:
                        progress.advance(CHUNK)
                pending = loader.submit(load_chunk, conn, rows)
            if pending is not None:
                pending.result()
        progress.done = count - existing
        if show_progress:
            progress.show()
    return SeedResult(count - existing, existing, consented)
