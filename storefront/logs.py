"""Structured logs: one JSON object a line, each with the request id that follows a
purchase from the hold request through Kafka into the job; and no secret, client
secret or card number in any of them.
"""

import contextvars
import logging
import re

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_SECRETS = [
    (re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9_]+"), r"\1_\2_[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "whsec_[redacted]"),
    (re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9_]+"), r"\1_secret_[redacted]"),
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[card number redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` to every record and scrubs secrets from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr, for a process entry point (wsgi.py, worker.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    ))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.WARNING)


def console_logging_unless_configured() -> None:
    """Readable lines on stderr for a process that set up no logging of its own (``flask run``,
    the embedded quick start): there, the order emails written to the log are seen too.
    Entry points that configure logging (wsgi.py, worker.py) and pytest are left alone."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("kafka").setLevel(logging.WARNING)


def current_request_id() -> str | None:
    return request_id_var.get()
