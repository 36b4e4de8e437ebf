"""The design document's own test, as the design wrote it: a fake user and a privacy request go
in through ``config.POSTGRES_DSN``; ``process_privacy_requests()`` (no argument) must NULL the
person's email, name and address.

It runs against the stack that is running (``make up``, or compose): ``pytest tests/test_gdpr.py``.
The full suite runs it against its own isolated stack in a child pytest
(tests/integration/test_design_contract.py), never against a developer's stack.
"""

import uuid

import psycopg2

from config import POSTGRES_DSN
from gdpr.process_privacy_requests import process_privacy_requests


def test_gdpr_anonymization() -> None:
    conn = psycopg2.connect(POSTGRES_DSN)
    conn.autocommit = True
    cur = conn.cursor()

    user_id = str(uuid.uuid4())
    email = f"test_{user_id[:8]}@example.com"
    cur.execute(
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, %s, %s)",
        (user_id, email, "Test User", "Test Street 1, 12345 Test City"),
    )
    cur.execute("INSERT INTO privacy_requests (email) VALUES (%s)", (email,))

    process_privacy_requests()

    cur.execute("SELECT email, full_name, address FROM users_pii WHERE user_id = %s", (user_id,))
    email_after, name_after, address_after = cur.fetchone()  # type: ignore[misc]
    assert email_after is None
    assert name_after is None
    assert address_after is None

    cur.close()
    conn.close()
