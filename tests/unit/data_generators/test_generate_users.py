"""Generated users: reproducible, with unique emails."""

from __future__ import annotations

from datetime import date

from data_generators.generate_users import build_pools, email_part, generate_rows


def test_generated_users_are_reproducible_and_emails_unique() -> None:
    pools = build_pools(1)
    first = generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    assert first == generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    emails = [line.split(",")[1] for line in first[0].splitlines()]
    assert len(set(emails)) == 2000
    assert all(e.strip('"').endswith(("example.com", "example.org", "example.net")) for e in emails)
    assert email_part("Müller-Lüdenscheidt") == "mullerludenscheidt"
