"""Kafka client factories (confluent-kafka) with the settings this platform relies on."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from core.config import KafkaSettings
from core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

START_HINT = "start it with `make up` (embedded) or `docker compose up -d`, or set KAFKA_BOOTSTRAP_SERVERS"
# How long a command waits for the broker's metadata before it says the broker is down.
REACHABLE_TIMEOUT_S = 5.0


# librdkafka reconnects by itself and reports the same error every few hundred milliseconds
# while a broker is away: one warning per error kind per 30 s says it without flooding the log.
ERROR_LOG_INTERVAL_S = 30.0
_last_logged: dict[int, float] = {}


def log_client_error(err: KafkaError) -> None:
    """librdkafka's error callback: one warning per error kind per 30 s, the rest at debug."""
    now = time.monotonic()
    if now - _last_logged.get(err.code(), -ERROR_LOG_INTERVAL_S) >= ERROR_LOG_INTERVAL_S:
        _last_logged[err.code()] = now
        logger.warning("Kafka: %s (the client keeps retrying)", err.str())
    else:
        logger.debug("Kafka: %s", err.str())


def _debug_errors(err: KafkaError) -> None:
    # Admin clients answer "is the broker there?": the caller reports a failure itself.
    logger.debug("Kafka admin: %s", err.str())


def producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent producer: retries never duplicate or reorder a message in a partition."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        # 20 ms of batching and lz4 trade a little latency for an order of magnitude in throughput.
        "linger.ms": 20,
        "compression.type": "lz4",
        "error_cb": log_client_error,
        # librdkafka's own log repeats every connection failure; error_cb reports them once.
        "log_level": 2,
    }
    config.update(overrides)
    return Producer(config)


def consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that never commits offsets to Kafka: PostgreSQL holds the progress."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # The embedded broker (Tansu) stalls the first join with the 45 s default; 6 s joins in
        # about 3 s (DESIGN.md).
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # A fetch waits this long for data at most (librdkafka's default is 500 ms). A broker that
        # holds a fetch for its whole wait makes it the floor of freshness; 20 idle fetches a
        # second cost nothing.
        "fetch.wait.max.ms": 50,
        "error_cb": log_client_error,
        # librdkafka's own log repeats every connection failure; error_cb reports them once.
        "log_level": 2,
    }
    config.update(overrides)
    return Consumer(config)


def admin(settings: KafkaSettings) -> AdminClient:
    # log_level 0: a refused connection surfaces once, as ServiceUnavailable, not as log noise.
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers, "error_cb": _debug_errors, "log_level": 0}
    return AdminClient(config)


def ensure_reachable(settings: KafkaSettings, timeout: float = REACHABLE_TIMEOUT_S) -> AdminClient:
    """Return an admin client once the broker answers; raise ServiceUnavailable otherwise."""
    client = admin(settings)
    try:
        client.list_topics(timeout=timeout)
    except KafkaException as e:
        raise ServiceUnavailable(f"Kafka at {settings.bootstrap_servers} is not reachable: {START_HINT}") from e
    return client


# A broker that refuses a topic configuration answers one of these; the topic is then created
# with the broker's defaults instead (Tansu 0.6 accepts retention.ms and reports it back).
CONFIG_REFUSALS = (KafkaError.INVALID_CONFIG, KafkaError.POLICY_VIOLATION, KafkaError.UNSUPPORTED_VERSION)


def topic_config(settings: KafkaSettings) -> dict[str, str]:
    """The configuration a topic gets when the platform creates it: ``retention.ms`` from
    KAFKA_RETENTION_HOURS (the topic is a buffer; events_raw holds the history)."""
    return {"retention.ms": str(settings.retention_hours * 3_600_000)}


def ensure_topic(settings: KafkaSettings, topic: str | None = None, partitions: int | None = None) -> bool:
    """Create the topic if it does not exist, with ``topic_config``; return True when it was
    created. A topic that exists keeps its configuration."""
    name = topic or settings.topic
    count = partitions or settings.partitions
    client = ensure_reachable(settings)
    config = topic_config(settings)
    try:
        try:
            client.create_topics([NewTopic(name, count, 1, config=config)])[name].result(timeout=15)
        except KafkaException as e:
            if not (e.args and e.args[0].code() in CONFIG_REFUSALS):
                raise
            logger.warning(
                "Kafka at %s refused %s for topic %s (%s): created with the broker's defaults",
                settings.bootstrap_servers,
                config,
                name,
                e.args[0].str(),
            )
            client.create_topics([NewTopic(name, count, 1)])[name].result(timeout=15)
    except KafkaException as e:
        if e.args and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise ServiceUnavailable(f"could not create topic {name!r} on {settings.bootstrap_servers}: {e}") from e
    logger.info("created topic %s with %d partitions, retention %d h", name, count, settings.retention_hours)
    return True


def partitions_of(settings: KafkaSettings, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (empty when it does not exist)."""
    metadata = ensure_reachable(settings).list_topics(topic, timeout=REACHABLE_TIMEOUT_S)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)


def end_offsets(settings: KafkaSettings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The true end of each partition: the offset the next produced message will get.

    Tansu 0.6 answers ListOffsets(latest) with the base offset of the last record batch, not
    the end of the log. So this starts at the reported high watermark and reads to the
    partition EOF, which gives the right answer on any broker (on Apache Kafka nothing is read).
    """
    parts = partitions_of(settings, topic)
    probe = consumer(settings, group_id="end-offset-probe", **{"enable.partition.eof": True})
    try:
        ends = {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=REACHABLE_TIMEOUT_S, cached=False)[1] for p in parts
        }
        probe.assign([TopicPartition(topic, p, ends[p]) for p in parts])
        pending = set(parts)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in probe.consume(num_messages=10_000, timeout=0.05):
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None:
                    continue
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[partition] = max(ends[partition], offset)
                    pending.discard(partition)
                elif error is None:
                    ends[partition] = max(ends[partition], offset + 1)
        if pending:
            raise ServiceUnavailable(f"Kafka at {settings.bootstrap_servers} did not report the end of {topic} {sorted(pending)}")
        return ends
    except KafkaException as e:
        raise ServiceUnavailable(f"Kafka at {settings.bootstrap_servers} did not report offsets: {START_HINT}") from e
    finally:
        probe.close()
