"""The inbox of an address, as the privacy API's per-address limit counts it."""

from __future__ import annotations

import pytest

from gdpr.email_address import mailbox, normalise


@pytest.mark.parametrize(
    "spelling",
    [
        "bomb@exämple.de",
        "bomb@EXÄMPLE.de",
        "bomb@xn--exmple-cua.de",
        "BOMB@XN--EXMPLE-CUA.DE",
        "bomb@\uff45\uff58ämple.de",  # full-width e and x
        "bomb@exa\u0308mple.de",  # a combining umlaut
        "Bomb@Exämple.De",
    ],
)
def test_every_spelling_of_an_inbox_is_one_mailbox(spelling: str) -> None:
    assert mailbox(normalise(spelling)) == "bomb@xn--exmple-cua.de"


def test_other_inboxes_stay_apart() -> None:
    assert mailbox(normalise("bomb@example.de")) != mailbox(normalise("bomb@exämple.de"))
    assert mailbox(normalise("jösé@example.org")) == mailbox(normalise("JÖSÉ@EXAMPLE.ORG")) == "jösé@example.org"
    assert mailbox(normalise("jane@mail.test", deliverable=False)) == "jane@mail.test"
