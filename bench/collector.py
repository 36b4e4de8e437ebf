"""The HTTP collector's throughput and latency, against a baseline measured in the same run.

``measure(settings)`` starts (a) the real collector (``python -m collector``), (b) the baseline,
what a user would write instead (bench.fastapi_baseline: FastAPI, pydantic validation of the
event's fields, confluent-kafka with acks=all answering after delivery, to the same topic), and
(c) for context, the collector's framework and server answering 202 after only reading the body.
The same client sends each the same batches of 100 events from concurrent keep-alive connections:

1. throughput: every connection sends back to back for ``seconds``; events/s of each server;
2. latency of (a) and (b), each at half its own maximum rate: paced connections; p50/p99 of the
   time from each request's scheduled start to its answer (a late start counts, so queueing shows);
3. the peak RSS of (a) and (b) over their runs (psutil).

The client is a minimal HTTP/1.1 client on asyncio streams with pre-encoded requests, in this
process, so the servers' processes measure only themselves; on a 2-core machine the client
still takes CPU from the server, equally for both. ``python -m bench.collector`` runs it against
the stack that ``make up`` started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psutil

from collector import auth
from core import db
from core.config import PROJECT_ROOT, Settings, load_settings
from data_generators.events import EventFactory

BATCH = 100
# Distinct pre-encoded batches the clients cycle through.
BODIES = 50
LISTENING = re.compile(rb"listening on http://([\d.]+):(\d+)")
START_TIMEOUT_S = 60.0

# Context: the collector's framework, server and server settings, minus the collector.
_READ_BODY = """
import asyncio, socket, sys
import falcon, falcon.asgi, uvicorn, uvloop
from collector.app import read_body

class Events:
    async def on_post(self, req, resp):
        await read_body(req, 1 << 20)
        resp.status = 202
        resp.content_type = "application/json"
        resp.data = b'{"accepted":100,"rejected":0}'

app = falcon.asgi.App()
app.add_route("/v1/events", Events())
sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
print("read-body listening on http://%s:%d" % sock.getsockname()[:2], file=sys.stderr, flush=True)
config = uvicorn.Config(app, http="httptools", ws="none", lifespan="off", access_log=False, log_config=None,
                        server_header=False, backlog=2048)
with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    runner.run(uvicorn.Server(config).serve(sockets=[sock]))
"""


class Server:
    """A server process started for the bench, its address, and its peak RSS while it ran."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.host, self.port = self._address()
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _address(self) -> tuple[str, int]:
        assert self.process.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        lines: list[bytes] = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            lines.append(line)
            found = LISTENING.search(line)
            if found:
                # Keep draining its log so the server never blocks on a full pipe.
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return found.group(1).decode(), int(found.group(2))
        self.process.kill()
        raise RuntimeError("server did not start:\n" + b"".join(lines).decode(errors="replace")[-2000:])

    def _sample(self) -> None:
        try:
            process = psutil.Process(self.process.pid)
            while not self._stop.wait(0.2):
                self.peak_rss = max(self.peak_rss, process.memory_info().rss)
        except psutil.Error:
            return

    def stop(self) -> int:
        self._stop.set()
        self.process.terminate()
        return self.process.wait(30)


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[Server]:
    server = Server(command, env)
    try:
        yield server
    finally:
        server.stop()


def bodies(count: int = BODIES, batch: int = BATCH) -> list[bytes]:
    """``count`` JSON arrays of ``batch`` generator events, stamped now, every event id unique."""
    factory = EventFactory([str(uuid.uuid4()) for _ in range(10_000)], seed=1)
    now = datetime.now(UTC)
    return [b"[" + b",".join(m["value"] for m in factory.messages(batch, now)) + b"]" for _ in range(count)]


def requests(host: str, port: int, key: str, payloads: list[bytes]) -> list[bytes]:
    """Each payload as one complete, pre-encoded HTTP/1.1 request."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    return [head.format(length=len(p)).encode() + p for p in payloads]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole answer (keep-alive); return the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _flood(host: str, port: int, prepared: list[bytes], clients: int, seconds: float) -> tuple[int, float]:
    """Every connection sends back to back; return (answered 202, seconds)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        while time.perf_counter() < deadline:
            status = await _exchange(reader, writer, prepared[i % len(prepared)])
            if status != 202:
                raise RuntimeError(f"HTTP {status} from the server under load")
            done += 1
            i += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done, time.perf_counter() - started


async def _paced(host: str, port: int, prepared: list[bytes], clients: int, *, seconds: float, rate: float) -> list[float]:
    """``rate`` requests/s spread over the connections; latency of each from its scheduled start."""
    latencies: list[float] = []
    interval = clients / rate

    async def client(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        start = time.perf_counter() + offset * interval / clients
        for n in range(int(seconds / interval)):
            scheduled = start + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await _exchange(reader, writer, prepared[(offset + n) % len(prepared)])
            latencies.append(time.perf_counter() - scheduled)
        writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def _bench_key(settings: Settings) -> str:
    """A key for the bench, limited far above any rate a bench reaches."""
    with db.connection(settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
        return auth.create_key(cur, f"bench-{uuid.uuid4().hex[:8]}", [], 1_000_000)


def _throughput(server: Server, key: str, payloads: list[bytes], clients: int, seconds: float) -> float:
    """Events/s of a server flooded by every connection for ``seconds``, after a second's warm-up."""
    prepared = requests(server.host, server.port, key, payloads)
    asyncio.run(_flood(server.host, server.port, prepared, clients, 1.0))
    done, took = asyncio.run(_flood(server.host, server.port, prepared, clients, seconds))
    return done * BATCH / took


def _latency(
    server: Server, key: str, payloads: list[bytes], clients: int, *, seconds: float, events_per_s: float
) -> dict[str, float]:
    """p50 and p99 in ms at ``events_per_s``."""
    prepared = requests(server.host, server.port, key, payloads)
    rate = events_per_s / BATCH
    latencies = asyncio.run(_paced(server.host, server.port, prepared, clients, seconds=seconds, rate=rate))
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def measure(settings: Settings, key: str | None = None, seconds: float = 10, clients: int = 32) -> dict[str, Any]:
    """Events/s of the collector, of the FastAPI baseline and of the read-body server; p50/p99
    latency of the collector and of the baseline, each at half its own rate; their peak RSS.
    ``key`` defaults to a fresh unlimited key (created with the DATABASE_URL login). The settings'
    topic must exist."""
    key = key or _bench_key(settings)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "EVENTS_TOPIC": settings.kafka.topic,
        "LOG_LEVEL": "INFO",  # the collector logs the address it listens on at INFO
        "METRICS_ENABLED": "false",  # no default metrics port: it may be taken on a bench machine
    }
    payloads = bodies()
    results: dict[str, Any] = {"batch": BATCH, "clients": clients, "seconds": seconds}
    with running([sys.executable, "-c", _READ_BODY], env) as read_body:
        results["read_body_events_per_s"] = _throughput(read_body, key, payloads, clients, seconds)
    with running([sys.executable, "-m", "bench.fastapi_baseline"], env) as baseline:
        rate = _throughput(baseline, key, payloads, clients, seconds)
        results["baseline_events_per_s"] = rate
        results["baseline_latency_rate_events_per_s"] = rate / 2
        latency = _latency(baseline, key, payloads, clients, seconds=seconds, events_per_s=rate / 2)
        results["baseline_p50_ms"], results["baseline_p99_ms"] = latency["p50_ms"], latency["p99_ms"]
        results["baseline_peak_rss_mib"] = baseline.peak_rss / 2**20
    with running([sys.executable, "-m", "collector", "--port", "0"], env) as collector:
        rate = _throughput(collector, key, payloads, clients, seconds)
        results["collector_events_per_s"] = rate
        results["latency_rate_events_per_s"] = rate / 2
        results.update(_latency(collector, key, payloads, clients, seconds=seconds, events_per_s=rate / 2))
        results["collector_peak_rss_mib"] = collector.peak_rss / 2**20
    results["ratio"] = results["collector_events_per_s"] / results["baseline_events_per_s"]
    return results


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.collector``: measure against the running stack (``make up``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase (default: 10)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default: 32)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(load_settings(), seconds=args.seconds, clients=args.clients), indent=2))


if __name__ == "__main__":
    main()
