"""Benchmark: webhook → Kafka → RQ → COMPLETED, on the full stack on this machine.

Starts PostgreSQL (fsync on), Redis, one Kafka node, gunicorn (2 workers × 4
threads) and ``python worker.py``; places N holds, then sends one signed
``payment_intent.succeeded`` per hold from C concurrent senders, and prints
the webhook's own latency, the webhook-to-COMPLETED latency p50/p99 (send time
to the hold's ``updated_at``), and the sustained events per second.

    .venv/bin/python -m bench.pipeline [--events 2000] [--senders 16] [--workers 1]
"""

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from scripts.services import REPO, KafkaServer, PostgresServer, RedisServer, free_port, wait_for_port

WEBHOOK_SECRET = "whsec_bench_pipeline"
TOPIC = "storefront.payments"


def sign(payload: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(hold_id: str, product_id: int, user_id: str) -> bytes:
    return json.dumps({
        "id": f"evt_bench_{uuid.uuid4().hex}", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": f"pi_bench_{hold_id.replace('-', '')[:24]}", "object": "payment_intent",
                            "amount": 2500, "amount_received": 2500, "currency": "usd", "status": "succeeded",
                            "metadata": {"productId": str(product_id), "userId": user_id,
                                         "reservationId": hold_id}}},
    }).encode()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="worker.py processes (default 1)")
    args = parser.parse_args()

    with PostgresServer(durable=True) as postgres, RedisServer() as redis, KafkaServer() as kafka:
        kafka.create_topic(TOPIC)
        env = {**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis.url,
               "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "SECRET_KEY": "bench-pipeline",
               "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
        subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", "db", "upgrade"], env=env, cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dsn = f"host=127.0.0.1 port={postgres.port} user=postgres dbname=storefront"
        with psycopg.connect(dsn, autocommit=True) as conn:
            product_id = conn.execute(
                "INSERT INTO products (sku, name, description, price, currency, total_quantity, held_units,"
                " created_at) VALUES ('BENCH', 'Bench', '', 2500, 'usd', %s, %s, now()) RETURNING id",
                (args.events, args.events)).fetchone()[0]
            holds = conn.execute(
                "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
                " created_at, updated_at) SELECT gen_random_uuid(), %s, 'bench-' || n, 1, 2500, 'usd', 'PENDING',"
                " now() + interval '1 hour', now(), now() FROM generate_series(1, %s) AS n RETURNING id, user_id",
                (product_id, args.events)).fetchall()

        port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", "--threads", "4", "--worker-class", "gthread",
                                "--log-level", "warning"], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers = [subprocess.Popen([sys.executable, "worker.py"], env=env, cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(args.workers)]
        try:
            wait_for_port(port, 30, "gunicorn", web)
            url = f"http://127.0.0.1:{port}/api/webhooks/stripe"
            time.sleep(3)  # let the consumers join their group
            print(f"sending {args.events} signed webhooks from {args.senders} senders "
                  f"({args.workers} worker.py process(es))...", flush=True)
            sent_at: dict[str, float] = {}
            webhook_ms: list[float] = []
            session = requests.Session()
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.senders))

            def send(hold):
                hold_id, user_id = str(hold[0]), hold[1]
                payload = event(hold_id, product_id, user_id)
                started = time.time()
                response = session.post(url, data=payload, headers={"Stripe-Signature": sign(payload)}, timeout=30)
                response.raise_for_status()
                sent_at[hold_id] = started
                webhook_ms.append((time.time() - started) * 1000)

            first_send = time.time()
            with ThreadPoolExecutor(max_workers=args.senders) as pool:
                list(pool.map(send, holds))
            print(f"all sent in {time.time() - first_send:.1f}s; waiting for completion...", flush=True)

            with psycopg.connect(dsn, autocommit=True) as conn:
                deadline = time.time() + 300
                while time.time() < deadline:
                    done = conn.execute("SELECT count(*) FROM holds WHERE status = 'COMPLETED'").fetchone()[0]
                    if done == args.events:
                        break
                    time.sleep(0.5)
                rows = conn.execute("SELECT id, updated_at FROM holds WHERE status = 'COMPLETED'").fetchall()
            latencies = [(completed.timestamp() - sent_at[str(hold_id)]) * 1000 for hold_id, completed in rows]
            last = max(completed for _, completed in rows).timestamp()
            print()
            print(f"events completed:                {len(rows)} of {args.events}")
            print(f"webhook answer     p50 {percentile(webhook_ms, 50):7.1f} ms   p99 {percentile(webhook_ms, 99):7.1f} ms")
            print(f"webhook→COMPLETED  p50 {percentile(latencies, 50):7.1f} ms   p99 {percentile(latencies, 99):7.1f} ms"
                  f"   mean {statistics.fmean(latencies):.1f} ms")
            print(f"sustained:         {len(rows) / (last - first_send):7.0f} events/s (first send to last completion)")
        finally:
            for process in (web, *workers):
                process.terminate()
            for process in (web, *workers):
                process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
