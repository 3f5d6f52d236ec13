"""Apache Kafka: the only module that talks to it.

The webhook's side is :class:`KafkaBus`: an idempotent producer with
``acks=all`` whose ``publish`` returns only once the broker has acknowledged
the event, within a bounded wait, or raises :class:`EventNotDurable`.

The worker's side is :class:`PaymentConsumer`: a consumer in a group, with
auto-commit off, that hands each event to a job and commits an offset only after
every event before it was handed over.
"""

import json
import logging
import os
import threading
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    TopicAlreadyExistsError,
)
from kafka.serializer import Deserializer, Serializer
from kafka.structs import OffsetAndMetadata

from storefront.events import EventNotDurable
from storefront.metrics import KAFKA_PUBLISH_FAILURES

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5
CONSUMER_GROUP = "storefront-payments"


class JsonSerializer(Serializer):
    def serialize(self, topic, headers, data) -> bytes:
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class JsonDeserializer(Deserializer):
    def deserialize(self, topic, headers, data: bytes):
        return json.loads(data.decode())


class TextSerializer(Serializer):
    def serialize(self, topic, headers, data) -> bytes:
        return str(data).encode()


class KafkaBus:
    def __init__(self, bootstrap_servers: tuple[str, ...], topic: str):
        self.bootstrap_servers = list(bootstrap_servers)
        self.topic = topic
        self._producer: KafkaProducer | None = None
        self._producer_pid: int | None = None
        self._lock = threading.Lock()

    def _get_producer(self) -> KafkaProducer:
        # One producer per process: gunicorn forks its workers after the app is built.
        with self._lock:
            if self._producer is None or self._producer_pid != os.getpid():
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=0,
                    max_block_ms=PUBLISH_TIMEOUT_SECONDS * 1000,
                    request_timeout_ms=PUBLISH_TIMEOUT_SECONDS * 1000,
                    delivery_timeout_ms=PUBLISH_TIMEOUT_SECONDS * 2000,
                    reconnect_backoff_max_ms=1000,
                    key_serializer=TextSerializer(),
                    value_serializer=JsonSerializer(),
                )
                self._producer_pid = os.getpid()
            return self._producer

    def publish(self, message: dict) -> None:
        """Send the event keyed by its reservation, and wait for the broker's acknowledgement."""
        try:
            key = message.get("reservationId") or message.get("checkoutId") or message.get("drawEntryId")
            future = self._get_producer().send(self.topic, key=str(key), value=message)
            future.get(timeout=PUBLISH_TIMEOUT_SECONDS)
        except (KafkaError, TimeoutError) as error:
            KAFKA_PUBLISH_FAILURES.inc()
            raise EventNotDurable(f"Kafka did not acknowledge: {type(error).__name__}") from None

    def close(self) -> None:
        if self._producer is not None and self._producer_pid == os.getpid():
            self._producer.close(timeout=PUBLISH_TIMEOUT_SECONDS)
            self._producer = None


CLOSE_TIMEOUT_MS = 5000


class PaymentConsumer:
    """Reads payment events and hands each poll's to ``handle(messages)``; stops when ``stop()`` is called."""

    def __init__(self, bootstrap_servers: tuple[str, ...], topic: str, handle, *, group_id: str = CONSUMER_GROUP):
        self.handle = handle
        self._stopping = threading.Event()
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=list(bootstrap_servers),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
            # Gather a batch: the broker answers once 16 KiB (about twenty events) are there,
            # or after 100 ms. One job then settles them all, so RQ's cost per job and the
            # commit are shared; an event waits 100 ms at most for company.
            fetch_min_bytes=16 * 1024,
            fetch_max_wait_ms=100,
            # A consumer that died is noticed in seconds, and its partitions handed on.
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
            value_deserializer=JsonDeserializer(),
        )

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        log.info("payment consumer started")
        try:
            while not self._stopping.is_set():
                batch = self._consumer.poll(timeout_ms=500)
                if batch:
                    self._hand_over(batch)
        finally:
            # Bounded: leaving the group is a courtesy (the session's timeout hands the partitions on
            # anyway), and a worker asked to stop must stop; unbounded, it once outlived a 30 s SIGTERM.
            self._consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            log.info("payment consumer stopped")

    def _hand_over(self, batch) -> None:
        """Hand the whole poll over at once (one job for many events), then commit past it."""
        messages = [record.value for records in batch.values() for record in records]
        try:
            self.handle(messages)
        except Exception:
            log.exception("could not hand over %d payment events; they will be read again", len(messages))
            # Read them again from where this poll started, after a pause.
            for partition, records in batch.items():
                self._consumer.seek(partition, records[0].offset)
            self._stopping.wait(1.0)
            return
        self._commit({partition: records[-1].offset + 1 for partition, records in batch.items()})

    def _commit(self, done: dict) -> None:
        if done:
            self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()})


def ensure_topic(bootstrap_servers: tuple[str, ...], topic: str, partitions: int = 3) -> None:
    """Create the payments topic if it is missing, with the brokers' default replication."""
    admin = KafkaAdminClient(bootstrap_servers=list(bootstrap_servers), request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
        log.info("created Kafka topic %s", topic)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def broker_answers(bootstrap_servers: tuple[str, ...], timeout: float = 1.0) -> bool:
    """Readiness: can a connection to some bootstrap server be opened right now?"""
    import socket

    for server in bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _committed_offsets(admin: KafkaAdminClient, group_id: str) -> dict:
    # A broker creates its offsets topic on the first group lookup, and elects its
    # coordinators after: give it a moment.
    for attempt in range(20):
        try:
            return admin.list_group_offsets({group_id: None}).get(group_id, {})
        except (CoordinatorNotAvailableError, NotCoordinatorError, CoordinatorLoadInProgressError):
            if attempt == 19:
                raise
            time.sleep(0.5)
    return {}


def consumer_lag(bootstrap_servers: tuple[str, ...], topic: str, group_id: str = CONSUMER_GROUP) -> dict[int, dict]:
    """Per partition: the consumer group's committed offset, the log's end, and the lag between."""
    admin = KafkaAdminClient(bootstrap_servers=list(bootstrap_servers), request_timeout_ms=5000)
    consumer = KafkaConsumer(bootstrap_servers=list(bootstrap_servers), request_timeout_ms=5000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        from kafka.structs import TopicPartition

        topic_partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = consumer.end_offsets(topic_partitions) if topic_partitions else {}
        committed = _committed_offsets(admin, group_id)
        lag = {}
        for tp in topic_partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else 0
            lag[tp.partition] = {"committed": position, "end": ends.get(tp, 0), "lag": ends.get(tp, 0) - position}
        return lag
    finally:
        consumer.close()
        admin.close()
