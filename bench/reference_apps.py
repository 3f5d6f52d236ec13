"""The references bench/holds.py measures the shop against, served by the same gunicorn.

- ``bare``: a Flask app with one JSON route and nothing else (no hooks, no database);
- ``minimal``: a Flask app that does the shop's two hot jobs the shortest way this stack
  allows: a hold in ONE SQL statement and a product's availability in ONE SELECT, on a
  per-thread psycopg connection in autocommit, JSON answers, no hooks;
- ``same_work``: ``minimal``'s shape (the same connection, no hooks) running the shop's own
  statements: the hold function with its rules (storefront_place_hold: the visitor's and the
  address's limits, the start time, the queue) and the stock check's SELECT. Against it, the
  shop's figures say what the shop's layers cost (the envelope, ProxyFix, the rate limit,
  metrics, the owner's cookie); against ``minimal``, it says what the rules cost the database.

    gunicorn 'bench.reference_apps:bare'   /   gunicorn 'bench.reference_apps:minimal'

``minimal`` and ``same_work`` read DATABASE_URL (a plain ``host=… port=…`` psycopg DSN is built
from it).
"""

import os
import threading
import uuid

from flask import Flask, jsonify, request

bare = Flask("bare")


@bare.get("/")
def bare_route():
    return jsonify({"status": "ok"})


minimal = Flask("minimal")
_local = threading.local()

# Reserve and insert in one statement: the guarded UPDATE takes the product's one stock row's
# lock and the unit (bench/holds.py: reference_stock), the INSERT makes the hold from what it returned.
HOLD = """
WITH reserved AS (
    UPDATE reference_stock SET held_units = held_units + %(quantity)s
    WHERE product_id = %(product)s AND total_units - sold_units - held_units >= %(quantity)s
    RETURNING product_id
)
INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at, created_at, updated_at)
SELECT %(id)s, %(product)s, %(user)s, %(quantity)s, p.price * %(quantity)s, p.currency, 'PENDING',
       now() + interval '600 seconds', now(), now()
FROM reserved JOIN products p ON p.id = reserved.product_id
ON CONFLICT DO NOTHING
RETURNING id, product_id, user_id, quantity, amount, currency, status, expires_at
"""

# The contract's formula: the counters, plus lapsed-but-unswept units added back.
STOCK = """
SELECT r.product_id, r.total_units,
       r.total_units - r.sold_units - r.held_units + COALESCE((
           SELECT sum(h.quantity) FROM holds h
           WHERE h.product_id = r.product_id AND h.status = 'PENDING' AND h.expires_at <= now()), 0)
FROM reference_stock r WHERE r.product_id = %(product)s
"""


def _connection():
    import psycopg
    from sqlalchemy.engine import make_url

    conn = getattr(_local, "conn", None)
    if conn is None:
        url = make_url(os.environ["DATABASE_URL"])
        conn = psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                               autocommit=True)
        _local.conn = conn
    return conn


@minimal.post("/api/reservations")
def minimal_hold():
    body = request.get_json()
    row = _connection().execute(HOLD, {"id": uuid.uuid4(), "product": int(body["productId"]),
                                       "user": body["userId"], "quantity": int(body.get("quantity", 1))},
                                prepare=True).fetchone()
    if row is None:
        return jsonify({"error": "out_of_stock"}), 409
    return jsonify({"reservationId": str(row[0]), "status": row[6], "productId": row[1], "userId": row[2],
                    "quantity": row[3], "amount": row[4], "currency": row[5],
                    "expiresAt": row[7].strftime("%Y-%m-%dT%H:%M:%SZ"), "paymentIntentId": None}), 201


def _stock_answer(statement: str, product_id: int):
    """A stock read's row (product, total, available) as the contract's JSON."""
    row = _connection().execute(statement, {"product": product_id}, prepare=True).fetchone()
    if row is None:
        return jsonify({"error": "not_found"}), 404
    return jsonify({"productId": row[0], "available": row[2], "total": row[1], "inStock": row[2] > 0})


@minimal.get("/api/inventory/check/<int:product_id>")
def minimal_stock(product_id: int):
    return _stock_answer(STOCK, product_id)


same_work = Flask("same_work")


@same_work.post("/api/reservations")
def same_work_hold():
    from storefront.inventory.holds import _PLACE_HOLD
    from storefront.inventory.models import new_hold_id

    body = request.get_json()
    # The bench's proxy header gives each request its own address, as the shop reads it.
    address = request.headers.get("X-Forwarded-For", request.remote_addr)
    row = _connection().execute(_PLACE_HOLD, {
        "id": new_hold_id(), "product": int(body["productId"]), "visitor": body["userId"], "browser": "",
        "address": address, "block": None, "quantity": int(body.get("quantity", 1)), "ttl": 600, "limit": 10,
        "address_limit": 10, "block_limit": 160, "per_pass": 1, "rate_key": None, "rate_block": None,
        "rate_window": 0, "rate_weight": 0.0, "rate_limit": 0, "rate_block_limit": 0}, prepare=True).fetchone()
    if row[0] not in ("created", "existing"):
        return jsonify({"error": row[0]}), 409
    return jsonify({"reservationId": str(row[2]), "status": row[9], "productId": row[3], "userId": row[4],
                    "quantity": row[6], "amount": row[7], "currency": row[8],
                    "expiresAt": row[10].strftime("%Y-%m-%dT%H:%M:%SZ"), "paymentIntentId": None}), 201


@same_work.get("/api/inventory/check/<int:product_id>")
def same_work_stock(product_id: int):
    from storefront.inventory.stock import _STOCK_OF_ON_POSTGRESQL

    return _stock_answer(_STOCK_OF_ON_POSTGRESQL, product_id)
