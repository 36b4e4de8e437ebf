"""The one exception a request handler raises to refuse a request, with what the client can do."""

from __future__ import annotations


class Refused(Exception):
    """A request the collector refuses: its HTTP status, a stable ``code`` a client can branch on,
    and a ``detail`` a person can act on. Answered as ``{"error": code, "detail": detail}``.

    ``retry_after`` (seconds) becomes the Retry-After header: set for 429 and 503, the statuses
    after which sending the same request again later is the right thing to do.
    """

    def __init__(self, status: int, code: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
