"""The references bench/holds.py measures the shop against, served by the same gunicorn.

- ``bare``: a Flask app with one JSON route and nothing else (no hooks, no database);
- ``minimal``: a Flask app that does the shop's two hot jobs the shortest way this stack
  allows: a hold in ONE SQL statement and a product's availability in ONE SELECT, on a
  per-thread psycopg connection in autocommit, JSON answers, no hooks.

    gunicorn 'bench.reference_apps:bare'   /   gunicorn 'bench.reference_apps:minimal'

``minimal`` reads DATABASE_URL (a plain ``host=… port=…`` psycopg DSN is built from it).
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

# Reserve and insert in one statement: the guarded UPDATE takes the product's row lock
# and the unit, the INSERT makes the hold from what it returned.
HOLD = """
WITH reserved AS (
    UPDATE products SET held_units = held_units + %(quantity)s
    WHERE id = %(product)s AND total_quantity - sold_units - held_units >= %(quantity)s
    RETURNING price, currency
)
INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at, created_at, updated_at)
SELECT %(id)s, %(product)s, %(user)s, %(quantity)s, price * %(quantity)s, currency, 'PENDING',
       now() + interval '600 seconds', now(), now()
FROM reserved
ON CONFLICT DO NOTHING
RETURNING id, product_id, user_id, quantity, amount, currency, status, expires_at
"""

# The contract's formula: the counters, plus lapsed-but-unswept units added back.
STOCK = """
SELECT p.id, p.total_quantity,
       p.total_quantity - p.sold_units - p.held_units + COALESCE((
           SELECT sum(h.quantity) FROM holds h
           WHERE h.product_id = p.id AND h.status = 'PENDING' AND h.expires_at <= now()), 0)
FROM products p WHERE p.id = %(product)s
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


@minimal.get("/api/inventory/check/<int:product_id>")
def minimal_stock(product_id: int):
    row = _connection().execute(STOCK, {"product": product_id}, prepare=True).fetchone()
    if row is None:
        return jsonify({"error": "not_found"}), 404
    return jsonify({"productId": row[0], "available": row[2], "total": row[1], "inStock": row[2] > 0})
