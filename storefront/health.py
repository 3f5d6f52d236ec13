"""Liveness and readiness, for load balancers and orchestrators."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from storefront.database import reading
from storefront.jobs import job_runner

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the database, and Redis and Kafka where configured, answer."""
    settings = current_app.config["STOREFRONT"]
    down = []
    try:
        with reading() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        down.append("database")
    if settings.redis_url:
        try:
            job_runner().connection.ping()
        except Exception:
            down.append("redis")
    if settings.kafka_bootstrap_servers:
        from storefront.events.kafka import broker_answers  # kafka-python only where Kafka is used

        if not broker_answers(settings.kafka_bootstrap_servers):
            down.append("kafka")
    if down:
        return jsonify({"status": "unavailable", "down": down}), 503
    return jsonify({"status": "ok"})
