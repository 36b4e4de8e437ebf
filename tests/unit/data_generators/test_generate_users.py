"""Generated users: reproducible, with unique emails; a share of them with analytics consent
granted before any event the generator can make for them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from data_generators.events import MAX_BACKFILL_DAYS, EventFactory
from data_generators.generate_users import ChunkRows, build_pools, consents, email_part, generate_rows, generated_user_id
from data_generators.shoppers import ShopperFactory


def test_generated_users_are_reproducible_and_emails_unique() -> None:
    pools = build_pools(1)
    first = generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    assert first == generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    emails = [line.split(",")[1] for line in first[0].splitlines()]
    assert len(set(emails)) == 2000
    assert all(e.strip('"').endswith(("example.com", "example.org", "example.net")) for e in emails)
    assert email_part("Müller-Lüdenscheidt") == "mullerludenscheidt"


def grants(rows: ChunkRows) -> dict[str, list[str]]:
    """user_id -> the consent_ledger CSV fields of its grant."""
    return {line.split(",")[0]: line.split(",") for line in rows.consent.splitlines()}


def test_the_consent_share_picks_the_same_users_for_a_seed_whatever_the_chunking() -> None:
    pools = build_pools(1)
    whole = generate_rows(1, 1000, pools, 1, date(2026, 1, 1), consent_share=0.5)
    halves = [generate_rows(1, 500, pools, 1, date(2026, 1, 1), consent_share=0.5),
              generate_rows(501, 1000, pools, 1, date(2026, 1, 1), consent_share=0.5)]  # fmt: skip
    assert grants(whole).keys() == grants(halves[0]).keys() | grants(halves[1]).keys()
    assert 400 < len(grants(whole)) < 600
    assert grants(whole).keys() == {generated_user_id(1, n) for n in range(1, 1001) if consents(1, n, 0.5)}
    # A larger share keeps the people of a smaller one; the extremes are nobody and everybody.
    more = generate_rows(1, 1000, pools, 1, date(2026, 1, 1), consent_share=0.8)
    assert grants(whole).keys() < grants(more).keys()
    assert generate_rows(1, 1000, pools, 1, date(2026, 1, 1), consent_share=0.0).consent == ""
    assert len(grants(generate_rows(1, 1000, pools, 1, date(2026, 1, 1)))) == 1000


def test_a_grant_is_analytics_from_the_signup_recorded_by_the_generator() -> None:
    rows = generate_rows(1, 200, build_pools(2), 2, date(2026, 1, 1))
    signups = {line.split(",")[0]: line.split(",")[2] for line in rows.public.splitlines()}
    for user_id, (_user, purpose, granted, effective_at, source) in grants(rows).items():
        assert (purpose, granted, source) == ("analytics", "true", "generator")
        assert effective_at == f"{signups[user_id]}T00:00:00+00:00"


def test_every_event_the_generator_makes_for_a_user_comes_after_the_signup_and_its_grant() -> None:
    """With CONSENT_MODE=required an event before the grant is dropped: the longest backfill
    generate_events allows must still start after the latest signup."""
    today = date(2026, 1, 1)
    rows = generate_rows(1, 2000, build_pools(3), 3, today)
    latest_grant = max(datetime.fromisoformat(fields[3]) for fields in grants(rows).values())
    # generate_events run at the first instant of the day the users were made, or any later.
    now = datetime(today.year, today.month, today.day, tzinfo=UTC)
    factory = EventFactory(list(grants(rows)), seed=3)
    earliest = min(factory.backfill_time(now, MAX_BACKFILL_DAYS) for _ in range(20_000))
    assert now - timedelta(days=MAX_BACKFILL_DAYS) <= earliest
    assert latest_grant < now - timedelta(days=MAX_BACKFILL_DAYS)
    signups = [date.fromisoformat(line.split(",")[2]) for line in rows.public.splitlines()]
    assert max(signups) < today - timedelta(days=MAX_BACKFILL_DAYS)


def test_signups_spread_over_the_last_days_leave_the_other_columns_and_the_default_as_they_are() -> None:
    today = date(2026, 3, 1)
    pools = build_pools(4)
    default = generate_rows(1, 2000, pools, 4, today, consent_share=0.8)
    assert default == generate_rows(1, 2000, pools, 4, today, consent_share=0.8, signup_days=None)
    recent = generate_rows(1, 2000, pools, 4, today, consent_share=0.8, signup_days=30)
    signups = [date.fromisoformat(line.split(",")[2]) for line in recent.public.splitlines()]
    assert min(signups) == today - timedelta(days=29)
    assert max(signups) == today
    # Only the signup differs: the same people, countries and consents.
    assert recent.pii == default.pii
    assert [line.split(",")[:2] for line in recent.public.splitlines()] == [
        line.split(",")[:2] for line in default.public.splitlines()
    ]
    assert grants(recent).keys() == grants(default).keys()
    by_id = {line.split(",")[0]: line.split(",")[2] for line in recent.public.splitlines()}
    assert all(fields[3] == f"{by_id[user_id]}T00:00:00+00:00" for user_id, fields in grants(recent).items())


def test_shoppers_of_recently_signed_up_users_act_only_after_their_signup_and_grant() -> None:
    """The demo's users (--signup-days) and events (--behaviour shoppers --backfill-days): no event
    before the person's signup, so none that CONSENT_MODE=required would drop for coming before the grant."""
    today = date(2026, 3, 1)
    rows = generate_rows(1, 1500, build_pools(5), 5, today, signup_days=60)
    fields = [line.split(",") for line in rows.public.splitlines()]
    users, signups = [f[0] for f in fields], [date.fromisoformat(f[2]) for f in fields]
    grant_at = {user_id: datetime.fromisoformat(g[3]) for user_id, g in grants(rows).items()}
    now = datetime(2026, 3, 1, 20, tzinfo=UTC)
    factory = ShopperFactory(users, signups, 5, backfill_days=60, count=30_000, now=now)
    messages = factory.messages(30_000, now)
    assert len(messages) > 20_000
    events = [json.loads(m["value"]) for m in messages]
    stamps = [(e["user_id"], datetime.fromisoformat(e["event_timestamp"])) for e in events]
    assert all(stamp >= grant_at[user] for user, stamp in stamps)
    # Early and late signers both act, each from their signup on.
    signup = dict(zip(users, signups, strict=True))
    assert min(signup[u] for u, _ in stamps) < today - timedelta(days=45)
    assert max(signup[u] for u, _ in stamps) > today - timedelta(days=15)
