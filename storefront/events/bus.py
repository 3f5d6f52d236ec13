"""The event bus between the webhook and the jobs.

The webhook publishes; a consumer hands each event to a job. With
``KAFKA_BOOTSTRAP_SERVERS`` the bus is Kafka (``events/kafka.py``) and the
consumer runs in ``python worker.py``. In embedded mode both sides run
in-process, at once: the event is durable when the job's own commit is, and any
failure reaches the webhook as :class:`EventNotDurable`, so Stripe delivers it
again.
"""

import hashlib
import logging

from flask import Flask, current_app

from storefront import jobs
from storefront.events import EventNotDurable

log = logging.getLogger(__name__)


def publish_payment_event(message: dict) -> None:
    current_app.extensions["storefront.events"].publish(message)


def handle_payment_message(message: dict) -> None:
    """One event handed over on its own (the in-process bus): its completion job, by its id."""
    jobs.enqueue("storefront.payments.jobs.complete_payment", message, job_id=f"payment-{message['eventId']}")


def handle_payment_messages(messages: list[dict]) -> None:
    """The consumer's side: the events of one poll become one completion job.

    Its id is derived from the events it carries, so the same batch handed over again
    (a consumer killed before committing) is the same job; a batch cut differently is
    another job, whose events are then settled as duplicates, changing nothing.
    """
    if len(messages) == 1:
        return handle_payment_message(messages[0])
    batch = hashlib.sha256(",".join(sorted(m["eventId"] for m in messages)).encode()).hexdigest()[:32]
    jobs.enqueue("storefront.payments.jobs.complete_payments", messages, job_id=f"payments-{batch}")


class InProcessBus:
    def publish(self, message: dict) -> None:
        try:
            handle_payment_message(message)
        except Exception as error:
            log.exception("in-process handling of payment event %s failed", message.get("eventId"))
            raise EventNotDurable(type(error).__name__) from error


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    if settings.kafka_bootstrap_servers:
        from storefront.events.kafka import KafkaBus

        app.extensions["storefront.events"] = KafkaBus(settings.kafka_bootstrap_servers, settings.kafka_payments_topic)
    else:
        app.extensions["storefront.events"] = InProcessBus()
