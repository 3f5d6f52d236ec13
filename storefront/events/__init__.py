"""Events between the webhook and the jobs: the bus (``bus.py``) and its Kafka side (``kafka.py``)."""


class EventNotDurable(Exception):
    """The event could not be handed over safely; the sender must try again."""
