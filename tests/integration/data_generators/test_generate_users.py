"""generate_users makes sure N users exist, counting them whoever made them (UUIDs have no maximum)."""

from __future__ import annotations

import uuid

import pytest

from core.config import Settings
from data_generators.generate_users import generated_user_id
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
