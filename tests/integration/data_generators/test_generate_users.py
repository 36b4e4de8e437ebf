"""generate_users makes sure N users exist, counting them whoever made them (UUIDs have no maximum),
and records the analytics consent of the share of them --consent-share asks for."""

from __future__ import annotations

import uuid

import pytest

from core.config import Settings
from data_generators.generate_users import consents, generated_user_id
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration


def test_users_are_counted_not_numbered(settings: Settings) -> None:
    # A user added the way the design's generator does, with a random UUID.
    outsider = str(uuid.uuid4())
    query(settings, "INSERT INTO users_pii (user_id, email) VALUES (%s, 'outsider@example.org')", (outsider,))
    query(settings, "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'AT', current_date)", (outsider,))

    first = run_command("data_generators.generate_users", "--count", "3", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert "users: 2 added, 3 requested (1 already existed)" in first.stdout
    made = {generated_user_id(5, n) for n in (2, 3)}
    assert {str(u) for (u,) in query(settings, "SELECT user_id FROM users_pii")} == made | {outsider}
    assert query(settings, "SELECT count(*) FROM users_public") == [(3,)]

    again = run_command("data_generators.generate_users", "--count", "2", "--seed", "5")
    assert again.returncode == 0, again.stderr
    assert "users: 0 added, 2 requested (3 already existed)" in again.stdout
    more = run_command("data_generators.generate_users", "--count", "5", "--seed", "5")
    assert "users: 2 added, 5 requested (3 already existed)" in more.stdout
    assert query(settings, "SELECT count(*), count(DISTINCT lower(email)) FROM users_pii") == [(5, 5)]


def consenting(settings: Settings) -> set[str]:
    return {str(u) for (u,) in query(settings, "SELECT user_id FROM consent_ledger")}


def test_a_share_of_the_users_added_grant_analytics_consent_from_their_signup(settings: Settings) -> None:
    half = run_command("data_generators.generate_users", "--count", "400", "--seed", "7", "--consent-share", "0.5")
    assert half.returncode == 0, half.stderr
    granted = consenting(settings)
    assert 160 <= len(granted) <= 240, "about half of 400"
    assert f"{len(granted)} of the added with analytics consent" in half.stdout
    # One grant per consenting user, from the midnight (UTC) of the signup, recorded by the database.
    rows = query(
        settings,
        "SELECT count(*), count(DISTINCT l.user_id),"
        " count(*) FILTER (WHERE l.purpose = 'analytics' AND l.granted AND l.source = 'generator'"
        "  AND l.effective_at = u.signup_date::timestamp AT TIME ZONE 'UTC' AND l.recorded_at IS NOT NULL)"
        " FROM consent_ledger l JOIN users_public u USING (user_id)",
    )
    assert rows == [(len(granted), len(granted), len(granted))]
    assert granted == {generated_user_id(7, n) for n in range(1, 401) if consents(7, n, 0.5)}

    # Share 0: the users added get no grant; existing users are left as they are.
    none = run_command("data_generators.generate_users", "--count", "500", "--seed", "7", "--consent-share", "0")
    assert none.returncode == 0, none.stderr
    assert "0 of the added with analytics consent" in none.stdout
    assert consenting(settings) == granted
    # Share 1 (the default): every user added consents.
    every = run_command("data_generators.generate_users", "--count", "600", "--seed", "7")
    assert every.returncode == 0, every.stderr
    assert "100 of the added with analytics consent" in every.stdout
    assert consenting(settings) == granted | {generated_user_id(7, n) for n in range(501, 601)}
    assert query(settings, "SELECT count(*) FROM users_public") == [(600,)]


def test_a_consent_share_outside_0_to_1_is_refused_before_any_user_is_made(settings: Settings) -> None:
    for share in ("1.5", "-0.1", "nan", "half"):
        result = run_command("data_generators.generate_users", "--count", "3", "--consent-share", share)
        assert result.returncode == 2
        assert "argument --consent-share: must be" in result.stderr and "from 0 to 1" in result.stderr
    assert query(settings, "SELECT count(*) FROM users_pii") == [(0,)]
