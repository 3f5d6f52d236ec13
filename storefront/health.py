"""Liveness and readiness, for load balancers and orchestrators."""

from flask import Blueprint, jsonify
from sqlalchemy import text

from storefront.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    down = []
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        down.append("database")
    finally:
        db.session.rollback()
    if down:
        return jsonify({"status": "unavailable", "down": down}), 503
    return jsonify({"status": "ok"})
