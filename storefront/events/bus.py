"""The event bus between the webhook and the jobs.

The webhook publishes; a consumer hands each event to a job. With
``KAFKA_BOOTSTRAP_SERVERS`` the bus is Kafka (``events/kafka.py``) and the
consumer runs in ``python worker.py``. In embedded mode both sides run
in-process, at once: the event is durable when the job's own commit is, and any
failure reaches the webhook as :class:`EventNotDurable`, so Stripe delivers it
again.
"""

import logging
from collections.abc import Callable

from flask import Flask, current_app

from storefront.events import EventNotDurable

log = logging.getLogger(__name__)
HANDLERS = "storefront.payment_handlers"


def publish_payment_event(message: dict) -> None:
    current_app.extensions["storefront.events"].publish(message)


def handles_payment_messages(app: Flask, one: Callable[[dict], None], many: Callable[[list[dict]], None]) -> None:
    """The area that settles payments says how it takes them: ``one`` an event handed over on its own,
    ``many`` the events of one poll. The bus names no job of theirs."""
    app.extensions[HANDLERS] = (one, many)


def handle_payment_message(message: dict) -> None:
    """One event handed over on its own (the in-process bus)."""
    current_app.extensions[HANDLERS][0](message)


def handle_payment_messages(messages: list[dict]) -> None:
    """The consumer's side: the events of one poll, handed over together."""
    one, many = current_app.extensions[HANDLERS]
    if len(messages) == 1:
        return one(messages[0])
    return many(messages)


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
