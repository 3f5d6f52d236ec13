"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it), every process
writes its samples there and ``/metrics`` adds them up; worker.py on the same
host may share the folder, and its job metrics then show up too. Without it,
one process's own registry is served.
"""

import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = Counter("storefront_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "storefront_http_request_duration_seconds", "HTTP request latency", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HOLDS = Counter("storefront_holds_total", "Hold requests by outcome", ["outcome"])
WEBHOOK_EVENTS = Counter("storefront_webhook_events_total", "Stripe webhook events", ["type", "result"])
KAFKA_PUBLISH_FAILURES = Counter("storefront_kafka_publish_failures_total", "Events Kafka did not acknowledge")
JOB_DURATION = Histogram("storefront_job_duration_seconds", "Background job run time", ["job"])
JOB_FAILURES = Counter("storefront_job_failures_total", "Background job runs that raised", ["job"])
SWEPT_UNITS = Counter("storefront_sweep_units_released_total", "Units released by the sweep")
SWEEPS = Counter("storefront_sweeps_total", "Sweep runs")
RATE_LIMITER_DOWN = Counter("storefront_rate_limiter_unavailable_total",
                            "Requests let through unlimited because the rate limiter's Redis was down")
SETTLEMENTS = Counter("storefront_settlements_total", "Succeeded payments settled, by how the shop learned of "
                      "them (webhook, return, reconcile) and what came of it", ["trigger", "outcome"])
UNSEALED_MESSAGES = Counter("storefront_payment_messages_refused_total",
                            "Payment messages taken from the queue without the webhook's seal: refused")
INTENT_CHECKS = Counter("storefront_intent_checks_total", "PaymentIntents reconciliation asked Stripe about, "
                        "by the status found (or unreachable)", ["status"])

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    token = current_app.config["STOREFRONT"].metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("A bearer token is required (METRICS_TOKEN).\n", 401, mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="storefront metrics"'})
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def measured_job(name: str):
    """Record a job's run time, and its failures, under ``name``."""

    def decorate(function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            except Exception:
                JOB_FAILURES.labels(name).inc()
                raise
            finally:
                JOB_DURATION.labels(name).observe(time.perf_counter() - started)

        run.__name__, run.__doc__, run.__module__ = function.__name__, function.__doc__, function.__module__
        run.__qualname__ = function.__qualname__
        return run

    return decorate


_request_series: dict = {}


def observe_request(method: str, route: str, status: str, seconds: float) -> None:
    """Count a request and its latency by route (the rule, not the URL: ids would make one
    series per hold). The labelled children are looked up once per series, then kept."""
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = (REQUESTS.labels(method, route, status), LATENCY.labels(route))
    series[0].inc()
    series[1].observe(seconds)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
