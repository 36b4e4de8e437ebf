"""The statements the consumers run before every batch stay a few pages' work however many users
there are: checked on the plans PostgreSQL chooses for them."""

from __future__ import annotations

import json

import pytest

from consumers.store_raw_events import ERASED_AMONG
from core import db
from core.config import Settings

pytestmark = pytest.mark.integration


def test_the_erased_users_of_a_batch_are_found_in_the_index_of_the_erased_alone(settings: Settings) -> None:
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users_pii (user_id, email) SELECT gen_random_uuid(), 'user' || g || '@example.org'"
            " FROM generate_series(1, 5000) AS g"
        )
        cur.execute(
            "UPDATE users_pii SET email = NULL, anonymized_at = now()"
            " WHERE user_id IN (SELECT user_id FROM users_pii ORDER BY user_id LIMIT 3)"
        )
        cur.execute("ANALYZE users_pii")
        cur.execute("SELECT user_id::text FROM users_pii ORDER BY user_id LIMIT 1000")
        batch_users = "{" + ",".join(row[0] for row in cur.fetchall()) + "}"
        cur.execute("EXPLAIN (FORMAT JSON) " + ERASED_AMONG, (batch_users,))
        [(plan,)] = cur.fetchall()
        assert "users_pii_erased_idx" in json.dumps(plan)
        cur.execute(ERASED_AMONG, (batch_users,))
        assert len(cur.fetchall()) == 3
