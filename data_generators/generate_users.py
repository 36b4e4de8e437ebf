"""Seed Faker users: personal data into ``users_pii``, country and signup date into ``users_public``.

Faker is slow per call (tens of microseconds for an address), so it fills small per-locale pools
of names, streets and cities once, and users are drawn from those pools: a million users load
in seconds with COPY. ``--count N`` makes sure N users exist: re-running adds only the missing
ones, whoever created the others (users are counted, not numbered). The n-th user a seed makes
has a UUID derived from the seed and n (``generated_user_id``), so a run is reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import re
import unicodedata
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg2.extensions
from faker import Faker

from core import cli, db
from core.config import Settings

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
SEED_LOCK_ID = 715_002
SIGNUP_WINDOW_DAYS = 3 * 365


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


def generate_rows(first_id: int, last_id: int, pools: dict[str, LocalePool], seed: int, today: date) -> tuple[str, str]:
    """CSV text for users_pii and users_public for users number first_id..last_id (inclusive).

    The generator is seeded by (seed, first_id); chunks start at fixed numbers, so a user's data
    does not depend on how often the command ran.
    """
    rng = random.Random(seed * 1_000_003 + first_id)
    countries = rng.choices(list(COUNTRIES), [weight for _locale, weight in COUNTRIES.values()], k=last_id - first_id + 1)
    rand = rng.random
    pii: list[str] = []
    public: list[str] = []
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
        signup = today - timedelta(days=int(rand() * SIGNUP_WINDOW_DAYS))
        email = f"{email_part(first)}.{email_part(last)}.{number}@{domain}"
        pii.append(f"{user_id},{_csv(email)},{_csv(f'{first} {last}')},{_csv(address)}\n")
        public.append(f"{user_id},{country},{signup.isoformat()}\n")
    return "".join(pii), "".join(public)


def _csv(value: str) -> str:
    """One CSV field, quoted (names and addresses contain commas and quotes)."""
    return '"' + value.replace('"', '""') + '"'


def load_chunk(conn: psycopg2.extensions.connection, pii_csv: str, public_csv: str) -> None:
    """COPY one chunk of new users in one transaction."""
    with conn, conn.cursor() as cur:
        cur.copy_expert("COPY users_pii (user_id, email, full_name, address) FROM STDIN WITH (FORMAT csv)", io.StringIO(pii_csv))
        cur.copy_expert("COPY users_public (user_id, country, signup_date) FROM STDIN WITH (FORMAT csv)", io.StringIO(public_csv))


def seed_users(settings: Settings, count: int, seed: int, show_progress: bool = True) -> tuple[int, int]:
    """Make sure ``count`` users exist; return how many were added and how many existed before.

    Generation (Python) and loading (PostgreSQL) overlap: one chunk is generated while the
    previous one is copied.
    """
    with db.connection(settings.database, application_name="generate_users") as conn:
        with conn.cursor() as cur:
            # Held until the end: two seeders at once would make the same new users.
            cur.execute("SELECT pg_advisory_lock(%s)", (SEED_LOCK_ID,))
            cur.execute("SELECT count(*) FROM users_pii")
            row = cur.fetchone()
            existing = int(row[0]) if row else 0
        conn.commit()
        if existing >= count:
            return 0, existing
        pools = build_pools(seed)
        today = cli.today_utc()
        progress = cli.Progress("users", total=count - existing)
        chunks = [(start, min(start + CHUNK - 1, count)) for start in range(existing + 1, count + 1, CHUNK)]
        with ThreadPoolExecutor(max_workers=1) as loader:
            pending: Future[None] | None = None
            for start, end in chunks:
                rows = generate_rows(start, end, pools, seed, today)
                if pending is not None:
                    pending.result()
                    if show_progress:
                        progress.advance(CHUNK)
                pending = loader.submit(load_chunk, conn, *rows)
            if pending is not None:
                pending.result()
        progress.done = count - existing
        if show_progress:
            progress.show()
    return count - existing, existing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_generators.generate_users",
        description="Seed Faker users of EU countries: PII into users_pii, country and signup date into "
        "users_public. Makes sure COUNT users exist (counting users made by anybody); safe to re-run.",
    )
    parser.add_argument("--count", type=int, default=10_000, help="number of users that should exist (default: 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed, for reproducible users (default: 42)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.count < 1:
        build_parser().error("--count must be at least 1")

    def execute(settings: Settings) -> int:
        added, existing = seed_users(settings, args.count, args.seed)
        print(f"users: {added:,} added, {args.count:,} requested ({existing:,} already existed)")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
