"""Send generated events through the HTTP collector (``POST /v1/events``) instead of to Kafka.

The events are the bytes the Kafka path produces, sent as JSON arrays of ``batch_size`` events
by a few sender threads, each with a keep-alive connection of its own, so several requests are
in flight while each waits for the broker's acknowledgement. A batch is settled when the
collector answers 202 (some events may be rejected as invalid) or 422 (all rejected). A 429
(rate limit) or a 503 (broker away) is waited out for its ``Retry-After`` and the batch is sent
again, the same bytes with the same event ids. A 503 lists per event which ones the broker did
not acknowledge: only those are sent again, as the collector asks, because the streaming
metrics count every message (``events_raw`` would keep one row per id, the metrics would not).
A connection that fails mid-run is retried with backoff. Any other refusal (a wrong key, a
batch too large) cannot be fixed by sending again: it stops the run with the collector's error
code and detail.
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from core import retry
from core.config import mask_url
from core.errors import InvalidInput, PlatformError, ServiceUnavailable

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: thousands of lines a second at full speed, burying the
# generator's own. Its warnings still show; this module logs retries and refusals itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

PATH = "/v1/events"
DEFAULT_BATCH = 100
# The collector's default COLLECTOR_MAX_EVENTS: a larger batch would be refused with 413.
MAX_BATCH = 1000
# A few requests in flight: each one mostly waits for the broker's acknowledgement, so four keep
# one collector busy without taking every one of its workers.
CONCURRENCY = 4
# The collector waits up to COLLECTOR_DELIVERY_TIMEOUT_MS (10 s) for the broker before it answers
# 503; this leaves room for that answer to arrive.
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
# A connection that fails mid-run is tried again with the platform's backoff (core.retry: up to
# 0.5 s, 1 s, 2 s ... at most 10 s apart), with full jitter: the senders of every generator process
# lost the same collector at once, and should not all come back at the same instant.
BACKOFF = retry.Backoff(first_s=0.5, max_s=10.0, jitter="full")
# Retry-After missing or unreadable: wait this long; a Retry-After beyond the maximum is capped,
# so a misconfigured server cannot park the generator for hours.
RETRY_AFTER_DEFAULT_S = 1.0
RETRY_AFTER_MAX_S = 60.0
# A batch the collector has not taken for this long stops the run (5 minutes, like
# DB_RETRY_TIMEOUT_S): long enough for a restart, not forever.
GIVE_UP_S = 300.0
# Answers that mean "send the same batch again later", each with the wait it asks for.
WAIT_AND_RESEND = (429, 503)
# The reason a 503's results give an event the broker did not acknowledge (collector.intake).
BROKER_UNAVAILABLE = "broker_unavailable"
# Answers a proxy or a restarting server gives: retried with backoff, like a refused connection.
TRANSIENT = (500, 502, 504)
# What the generator's user can do that the collector's own detail cannot say.
HINTS = {413: " (lower --http-batch)"}


class CollectorRefused(InvalidInput):
    """The collector refused a batch for a reason that sending it again cannot fix."""


class _TransientAnswer(Exception):
    """An answer a proxy or a restarting collector gives: retried with backoff."""


@dataclass(frozen=True)
class CollectorTarget:
    """Where the events go and how: the collector's base URL, the write key, the batch size."""

    url: str
    key: str = field(repr=False)
    batch_size: int = DEFAULT_BATCH
    concurrency: int = CONCURRENCY

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + PATH

    @property
    def display_url(self) -> str:
        """The base URL for messages, any password masked."""
        return mask_url(self.url.rstrip("/"))


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be the collector's base URL, or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        return f"--via-http {url!r} is not a URL: {e}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"--via-http must be an http:// or https:// URL with a host, got {mask_url(url)!r}"
    if parsed.query or parsed.fragment:
        return f"--via-http is the collector's base URL (it adds {PATH}), without ?query or #fragment"
    return None


def ensure_reachable(target: CollectorTarget) -> None:
    """Open and close one TCP connection to the collector: a generator started against a
    collector that is not there stops at once with one line, instead of retrying."""
    url = httpx.URL(target.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise ServiceUnavailable(
            f"the collector at {target.display_url} cannot be reached ({e.strerror or e}): "
            "start it with `python -m collector` or check --via-http"
        ) from e


def retry_after(response: httpx.Response) -> float:
    """Seconds the collector asked to wait (``Retry-After`` in seconds), within bounds."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return RETRY_AFTER_DEFAULT_S
    if not math.isfinite(seconds) or seconds < 0:
        return RETRY_AFTER_DEFAULT_S
    return min(seconds, RETRY_AFTER_MAX_S)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The collector's ``{"error": code, "detail": text}``, or the HTTP reason when the body is
    not that (a proxy's page)."""
    body = _json(response)
    code = body.get("error")
    detail = body.get("detail")
    return (
        str(code) if code else response.reason_phrase.lower().replace(" ", "_") or "error",
        str(detail) if detail else "",
    )


def _reason(result: object) -> str:
    """The reason code of one rejected event's result (``reason``; ``error`` accepted too)."""
    if not isinstance(result, dict):
        return ""
    return str(result.get("reason") or result.get("error") or "")


def first_rejection(body: dict[str, Any]) -> str:
    """The reason code of the first rejected event in an answer's ``results`` (the code only:
    a detail may quote the event)."""
    results = body.get("results")
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and result.get("status") != "accepted" and _reason(result):
            return _reason(result)
    return str(body.get("error") or "rejected")


class Batch:
    """One request's events and body: the events' JSON as an array, built once, so a resend
    carries the very bytes (and event ids) of the first attempt."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.body = b"[" + b",".join(values) + b"]"
        self.events = len(values)

    def only(self, indices: list[int]) -> Batch:
        """The batch of the events at ``indices`` (in order)."""
        return Batch([self.values[i] for i in indices])


class Resend(NamedTuple):
    """What to send again, and after how long."""

    delay: float
    batch: Batch


class CollectorSender:
    """Batches event JSON and POSTs it to the collector from ``concurrency`` sender threads.

    ``add`` blocks while ``concurrency`` batches are queued or in flight (back-pressure, as a
    full producer queue does on the Kafka path). ``close`` sends what is left and waits for it;
    whatever is still unsettled when its timeout ends is abandoned and counted as undelivered.
    A refusal that resending cannot fix is raised by the next ``add`` or by ``close``.
    """

    def __init__(self, target: CollectorTarget, give_up_s: float = GIVE_UP_S) -> None:
        self.target = target
        self.give_up_s = give_up_s
        self.accepted = 0
        self.rejected = 0
        self.undelivered = 0
        self.requests = 0
        self.last_error = ""
        self._buffer: list[bytes] = []
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._slots = threading.Semaphore(target.concurrency)
        self._lock = threading.Lock()
        self._pending = 0  # events queued or in flight
        self._abandon = threading.Event()
        self._failure: PlatformError | None = None
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"collector-sender-{i}", daemon=True) for i in range(target.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> CollectorSender:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an error the run is over: abandon what is unsettled rather than wait for it.
        self.close(0.0 if exc is not None else REQUEST_TIMEOUT_S, raise_failure=exc is None)

    @property
    def in_flight(self) -> int:
        """Events handed over but not settled yet (buffered, queued or being sent)."""
        return self._pending + len(self._buffer)

    def add(self, values: list[bytes], stop: threading.Event) -> bool:
        """Take events for sending; return False when ``stop`` was set while waiting for room
        (the events stay buffered: ``close`` still tries to send them)."""
        self._buffer.extend(values)
        size = self.target.batch_size
        while len(self._buffer) >= size:
            if not self._wait_for_slot(stop):
                return False
            self._enqueue(self._buffer[:size])
            del self._buffer[:size]
        return True

    def close(self, timeout: float, raise_failure: bool = True) -> None:
        """Send what is buffered, wait up to ``timeout`` seconds for every batch to be settled,
        then abandon the rest (counted as undelivered) and stop the sender threads."""
        if self._closed:
            return
        self._closed = True
        if self._failure is None:
            # Past the slots: the run is ending and nothing follows. After a stop the buffer may
            # hold more than one batch.
            size = self.target.batch_size
            for start in range(0, len(self._buffer), size):
                self._enqueue(self._buffer[start : start + size])
        else:
            self._count(undelivered=len(self._buffer))
        self._buffer = []
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if any(thread.is_alive() for thread in self._threads):
            logger.warning("%d events not settled by the collector within %.0f s: abandoning them", self.in_flight, timeout)
            self._abandon.set()
            for thread in self._threads:
                thread.join()  # each ends within one request timeout
        if raise_failure:
            self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """Raise the refusal a sender thread met, if any."""
        if self._failure is not None:
            raise self._failure

    def _wait_for_slot(self, stop: threading.Event) -> bool:
        while not self._slots.acquire(timeout=0.1):
            self.raise_if_failed()
            if stop.is_set():
                return False
        self.raise_if_failed()
        return True

    def _enqueue(self, values: list[bytes]) -> None:
        with self._lock:
            self._pending += len(values)
        self._queue.put(Batch(values))

    def _count(self, *, accepted: int = 0, rejected: int = 0, undelivered: int = 0, error: str = "") -> None:
        with self._lock:
            self.accepted += accepted
            self.rejected += rejected
            self.undelivered += undelivered
            if error:
                self.last_error = error

    def _run(self) -> None:
        """One sender thread: its own client (and keep-alive connection), one batch at a time."""
        headers = {"Authorization": f"Bearer {self.target.key}", "Content-Type": "application/json"}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        with httpx.Client(headers=headers, timeout=timeout) as client:
            while (batch := self._queue.get()) is not None:
                try:
                    if self._abandon.is_set():
                        self._count(undelivered=batch.events)
                    else:
                        self._deliver(client, batch)
                except PlatformError as e:
                    self._fail(e)
                except httpx.HTTPError as e:  # not a transport error: an answer it cannot read
                    self._fail(ServiceUnavailable(f"the collector at {self.target.display_url} answered unreadably: {e}"))
                finally:
                    with self._lock:
                        self._pending -= batch.events
                    self._slots.release()

    def _fail(self, error: PlatformError) -> None:
        """The run is over: keep the first error for the main thread, stop the other senders."""
        if self._failure is None:
            self._failure = error
        self._abandon.set()

    def _deliver(self, client: httpx.Client, batch: Batch) -> None:
        """Send one batch until the collector settles every event of it; what is left when the
        run abandons it, or when sending fails for good, counts as undelivered."""
        unsettled = batch
        failures = 0

        def send() -> None:
            nonlocal unsettled
            with self._lock:
                self.requests += 1
            resend = self._settle(client.post(self.target.endpoint, content=unsettled.body), unsettled)
            if resend is not None:
                delay, unsettled = resend
                raise retry.RetryAfter(delay)

        def log(r: retry.Retry) -> None:
            nonlocal failures
            if isinstance(r.error, retry.RetryAfter):
                return  # _settle said why
            failures += 1
            logger.warning(
                "cannot reach the collector at %s (attempt %d): %s; sending the batch of %d events again in %.1f s",
                self.target.display_url, failures, str(r.error) or type(r.error).__name__, unsettled.events, r.delay_s,
            )  # fmt: skip

        policy = retry.RetryPolicy(
            transient=lambda e: isinstance(e, (httpx.TransportError, _TransientAnswer)), backoff=BACKOFF, budget_s=self.give_up_s
        )
        try:
            if not self._abandon.is_set():
                retry.call(send, policy, stop=self._abandon, on_retry=log)
                return
        except retry.Interrupted:
            pass  # the run is over: what is left is undelivered
        except retry.GaveUp as e:
            self._count(undelivered=unsettled.events)
            raise ServiceUnavailable(
                f"the collector at {self.target.display_url} has not taken a batch for {self.give_up_s:g} s: "
                "is it running (`python -m collector`) and is its broker reachable?"
            ) from e.error
        except (PlatformError, httpx.HTTPError):
            self._count(undelivered=unsettled.events)
            raise
        self._count(undelivered=unsettled.events)

    def _settle(self, response: httpx.Response, batch: Batch) -> Resend | None:
        """Count what the answer settled; return what to send again and when (None: nothing).
        Raise CollectorRefused for an answer that sending again cannot change."""
        status = response.status_code
        if status == 202:
            self._count_settled(response, batch)
            return None
        if status == 422:
            reason = first_rejection(_json(response))
            self._count(rejected=batch.events, error=f"the collector rejected all {batch.events} events ({reason})")
            return None
        if status in WAIT_AND_RESEND:
            rest = self._unacknowledged(response, batch) if status == 503 else batch
            if rest is None:
                return None
            delay = retry_after(response)
            logger.warning(
                "the collector answered %d (%s): sending %d of the batch's %d events again in %.1f s",
                status, error_of(response)[0], rest.events, batch.events, delay,
            )  # fmt: skip
            return Resend(delay, rest)
        if status in TRANSIENT:
            raise _TransientAnswer(f"it answered {status} {response.reason_phrase}")
        code, detail = error_of(response)
        raise CollectorRefused(
            f"the collector at {self.target.display_url} refused the events: {status} {code}"
            f"{': ' + detail if detail else ''}{HINTS.get(status, '')}"
        )

    def _count_settled(self, response: httpx.Response, batch: Batch) -> None:
        """Count a 202: the accepted events, and the rest rejected (invalid: never sent again)."""
        body = _json(response)
        accepted = body.get("accepted")
        if not isinstance(accepted, int) or not 0 <= accepted <= batch.events:
            raise CollectorRefused(
                f"the collector at {self.target.display_url} answered 202 without a valid 'accepted' count: "
                "is --via-http the collector?"
            )
        rejected = batch.events - accepted
        error = f"the collector rejected {rejected} of {batch.events} events ({first_rejection(body)})" if rejected else ""
        self._count(accepted=accepted, rejected=rejected, error=error)

    def _unacknowledged(self, response: httpx.Response, batch: Batch) -> Batch | None:
        """The events of a 503 to send again: those the broker did not acknowledge (the others
        are counted, accepted or rejected, now). The whole batch when the answer has no result
        per event (a proxy's 503); None when every event was settled after all."""
        results = _json(response).get("results")
        if not isinstance(results, list) or len(results) != batch.events:
            return batch
        accepted = [i for i, r in enumerate(results) if isinstance(r, dict) and r.get("status") == "accepted"]
        invalid = [
            i
            for i, r in enumerate(results)
            if isinstance(r, dict) and r.get("status") == "rejected" and _reason(r) not in ("", BROKER_UNAVAILABLE)
        ]
        settled = set(accepted) | set(invalid)
        again = [i for i in range(batch.events) if i not in settled]
        error = (
            f"the collector rejected {len(invalid)} of {batch.events} events ({_reason(results[invalid[0]])})" if invalid else ""
        )
        self._count(accepted=len(accepted), rejected=len(invalid), error=error)
        return batch.only(again) if again else None
