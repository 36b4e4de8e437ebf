"""The collector bench's baseline: what a user would write instead of the collector. FastAPI
validates each event's fields with pydantic (the collector's event model: ids, type, an aware
timestamp, an amount to the cent within the collector's bound, metadata an object) and a
confluent-kafka producer (acks=all, idempotent) sends each one keyed by its user; the answer
(202) comes once the broker acknowledged every event of the request, the delivery reports reaching
the event loop from a polling thread as in confluent-kafka's asyncio example. It has no write
keys, rate limits, consent check or redaction: only what a user needs to get events into Kafka.

Run by bench.collector with the stack's KAFKA_BOOTSTRAP_SERVERS and EVENTS_TOPIC; served by
uvicorn with its defaults (uvloop and httptools where installed, as they are here) on a free port,
which it prints as "baseline listening on http://HOST:PORT".
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import uvicorn
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, Field

from core.events import MAX_AMOUNT


class Event(BaseModel):
    """An analytics event, as the collector's model has it."""

    event_id: UUID
    user_id: UUID | Annotated[int, Field(gt=0)]
    event_type: Literal["page_view", "add_to_cart", "purchase"]
    event_timestamp: AwareDatetime
    amount: Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=2)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Sender:
    """A producer whose sends are awaitable: a thread polls for delivery reports and resolves each
    send's future on the event loop."""

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.producer = Producer(config)
        self.loop = loop
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stopped.is_set():
            self.producer.poll(0.1)

    def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        result: asyncio.Future[None] = self.loop.create_future()

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                self.loop.call_soon_threadsafe(result.set_exception, KafkaException(error))
            else:
                self.loop.call_soon_threadsafe(result.set_result, None)

        self.producer.produce(topic, value, key, on_delivery=delivered)
        return result

    def close(self) -> None:
        self.producer.flush(10)
        self.stopped.set()
        self.thread.join()


TOPIC = os.environ.get("EVENTS_TOPIC", "events")
senders: list[Sender] = []


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    config = {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "acks": "all", "enable.idempotence": True}
    senders.append(Sender(config, asyncio.get_running_loop()))
    yield
    senders.pop().close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/events", status_code=202)
async def collect(events: list[Event]) -> dict[str, int]:
    sender = senders[0]
    await asyncio.gather(*(sender.send(TOPIC, str(e.user_id).encode(), e.model_dump_json().encode()) for e in events))
    return {"accepted": len(events), "rejected": 0}


def main() -> None:
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    print("baseline listening on http://{}:{}".format(*sock.getsockname()[:2]), file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", backlog=2048)).run(sockets=[sock])


if __name__ == "__main__":
    main()
