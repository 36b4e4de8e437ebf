"""The one exception a request handler raises to refuse a request, with what the client can do."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A request the API refuses: its HTTP status, a stable ``code`` a client can branch on, a
    ``detail`` a person can act on, and any ``extra`` fields of the answer (``attempts_left``).
    Answered as ``{"error": code, "detail": detail, **extra}``; never quotes personal data.

    ``retry_after`` (seconds) becomes the Retry-After header, for 429 and 503.
    """

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: int | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


def not_found() -> Refused:
    """The one answer for an unknown request id and for a wrong secret alike: whoever guesses ids
    learns nothing about which exist."""
    return Refused(404, "not_found", "no request with this id and secret: check both")
