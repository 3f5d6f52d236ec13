"""Benchmark: webhook → Kafka → RQ → COMPLETED, on the full stack on this machine.

Starts PostgreSQL (fsync on), Redis, one Kafka node, gunicorn (2 workers × 4
threads) and ``python worker.py``. First the reference, in the same run: a bare
RQ SimpleWorker's rate of no-op jobs. Then a burst: one signed
``payment_intent.succeeded`` per hold from C concurrent senders, as fast as they
go: the sustained events/s (first send to last COMPLETED) against that reference,
and where the time went (from RQ's own records of each job). Then a steady run at
half that rate: webhook → COMPLETED p50/p99 (send time to the hold's ``updated_at``).

    .venv/bin/python -m bench.pipeline [--events 2000] [--senders 16] [--workers 1]
"""

import argparse
import hashlib
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from bench.holds import add_product, recount
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


def noop() -> None:
    """The reference job: RQ's own cost per job, nothing else."""


def rq_noop_rate(redis_url: str, jobs: int) -> float:
    """A bare RQ SimpleWorker (its own process, burst mode) running ``jobs`` no-op jobs: jobs/s."""
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    queue = Queue("bench-noop", connection=connection)
    with connection.pipeline() as pipe:
        for _ in range(jobs):
            queue.enqueue("bench.pipeline.noop", pipeline=pipe, result_ttl=60)
        pipe.execute()
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", (
        "import sys; from redis import Redis; from rq import Queue, SimpleWorker; "
        f"c = Redis.from_url({redis_url!r}); "
        "SimpleWorker([Queue('bench-noop', connection=c)], connection=c).work(burst=True, logging_level='WARNING')")],
        cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return jobs / (time.monotonic() - started)


def wait_for_group(bootstrap: str, members: int, seconds: float = 60) -> None:
    """Until the consumer group is stable with every worker.py's consumer in it (not a sleep)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                group = admin.describe_groups(["storefront-payments"])["storefront-payments"]
                state = group.get("group_state") or group.get("state")
                if state == "Stable" and len(group.get("members") or []) >= members:
                    return
            except Exception:  # the coordinator is still being elected
                pass
            time.sleep(0.2)
    finally:
        admin.close()
    raise RuntimeError("the consumer group did not form")


def where_the_time_went(redis_url: str, sent_at: dict[str, float], completed_at: dict[str, float]) -> None:
    """Per event, from RQ's records of the batch jobs: send → enqueued (webhook, Kafka, the
    consumer's poll and hand-over), enqueued → started (waiting in RQ), started → ended (the job)."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    connection = Redis.from_url(redis_url)
    registry = FinishedJobRegistry(queue=Queue("storefront", connection=connection))
    handed, waited, ran, after = [], [], [], []
    sizes = []
    for job in Job.fetch_many(registry.get_job_ids(), connection=connection):
        if job is None or not job.args:
            continue
        messages = job.args[0] if isinstance(job.args[0], list) else [job.args[0]]
        sizes.append(len(messages))
        enqueued, started, ended = (moment.timestamp() for moment in (job.enqueued_at, job.started_at, job.ended_at))
        for message in messages:
            hold_id = message["reservationId"]
            if hold_id in sent_at:
                handed.append((enqueued - sent_at[hold_id]) * 1000)
                waited.append((started - enqueued) * 1000)
                ran.append((ended - started) * 1000)
                after.append((completed_at[hold_id] - sent_at[hold_id]) * 1000)
    if not handed:
        return
    print(f"jobs: {len(sizes)}, events per job: mean {statistics.fmean(sizes):.1f}, max {max(sizes)}")
    for label, values in (("send → enqueued in RQ (webhook, Kafka, poll, hand-over)", handed),
                          ("enqueued → job started (waiting in RQ)", waited),
                          ("job started → ended (settling its batch)", ran)):
        print(f"  {label:<58} p50 {percentile(values, 50):7.1f} ms   p99 {percentile(values, 99):7.1f} ms")


def send_all(url: str, holds, product_id: int, senders: int, rate: float | None = None):
    """Send one signed webhook per hold; at ``rate`` events/s when given, else as fast as possible."""
    sent_at: dict[str, float] = {}
    webhook_ms: list[float] = []
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=senders))
    first = time.time()

    def send(numbered):
        number, (hold_id, user_id) = numbered
        hold_id = str(hold_id)
        if rate:
            delay = first + number / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        payload = event(hold_id, product_id, user_id)
        started = time.time()
        response = session.post(url, data=payload, headers={"Stripe-Signature": sign(payload)}, timeout=30)
        response.raise_for_status()
        sent_at[hold_id] = started
        webhook_ms.append((time.time() - started) * 1000)

    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(send, enumerate(holds)))
    return first, sent_at, webhook_ms


def wait_completed(dsn: str, hold_ids: list[str], seconds: float = 300) -> dict[str, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.time() + seconds
        while time.time() < deadline:
            rows = conn.execute("SELECT id::text, updated_at FROM holds WHERE status = 'COMPLETED' AND id = ANY(%s)",
                                (hold_ids,)).fetchall()
            if len(rows) == len(hold_ids):
                return {hold_id: completed.timestamp() for hold_id, completed in rows}
            time.sleep(0.2)
    raise RuntimeError(f"only {len(rows)} of {len(hold_ids)} completed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="the burst (default 2000)")
    parser.add_argument("--steady-seconds", type=int, default=10, help="the steady run's length (default 10)")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="worker.py processes (default 1)")
    args = parser.parse_args()

    with PostgresServer(durable=True) as postgres, RedisServer() as redis, KafkaServer() as kafka:
        kafka.create_topic(TOPIC)
        env = {**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis.url,
               "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "SECRET_KEY": secrets.token_urlsafe(32), "DEMO_PAYMENTS": "1",
               "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
        subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", "db", "upgrade"], env=env, cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("reference: a bare RQ SimpleWorker running no-op jobs...", flush=True)
        noop_rate = rq_noop_rate(redis.url, 3000)
        print(f"RQ no-op jobs:     {noop_rate:7.0f} jobs/s", flush=True)

        dsn = postgres.dsn()
        steady_events = 50_000  # enough holds for any steady rate this machine reaches
        with psycopg.connect(dsn, autocommit=True) as conn:
            total = args.events + steady_events
            product_id = add_product(conn, "BENCH", total)
            holds = conn.execute(
                "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
                " created_at, updated_at) SELECT gen_random_uuid(), %s, 'bench-' || n, 1, 2500, 'usd', 'PENDING',"
                " now() + interval '1 hour', now(), now() FROM generate_series(1, %s) AS n RETURNING id, user_id",
                (product_id, total)).fetchall()
            recount(conn, product_id)
        burst, steady_pool = holds[:args.events], holds[args.events:]

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
            wait_for_group(kafka.bootstrap_servers, args.workers)
            print(f"burst: {args.events} signed webhooks from {args.senders} senders "
                  f"({args.workers} worker.py process(es))...", flush=True)
            first, sent_at, webhook_ms = send_all(url, burst, product_id, args.senders)
            print(f"all sent in {time.time() - first:.1f}s; waiting for completion...", flush=True)
            completed = wait_completed(dsn, [str(h[0]) for h in burst])
            latencies = [(completed[h] - sent_at[h]) * 1000 for h in completed]
            sustained = len(completed) / (max(completed.values()) - first)
            print(f"webhook answer     p50 {percentile(webhook_ms, 50):7.1f} ms   p99 {percentile(webhook_ms, 99):7.1f} ms")
            print(f"webhook→COMPLETED  p50 {percentile(latencies, 50):7.1f} ms   p99 {percentile(latencies, 99):7.1f} ms"
                  "   (a burst: mostly queueing)")
            print(f"sustained:         {sustained:7.0f} events/s (first send to last completion)")
            where_the_time_went(redis.url, sent_at, completed)

            rate = sustained / 2
            count = min(len(steady_pool), int(rate * args.steady_seconds))
            print(f"\nsteady: {count} webhooks at {rate:.0f}/s (half the burst's rate) for {args.steady_seconds}s...",
                  flush=True)
            steady = steady_pool[:count]
            _, steady_sent, steady_webhook_ms = send_all(url, steady, product_id, args.senders, rate)
            steady_done = wait_completed(dsn, [str(h[0]) for h in steady])
            steady_latencies = [(steady_done[h] - steady_sent[h]) * 1000 for h in steady_done]
            print(f"webhook answer     p50 {percentile(steady_webhook_ms, 50):7.1f} ms   "
                  f"p99 {percentile(steady_webhook_ms, 99):7.1f} ms")
            print(f"webhook→COMPLETED  p50 {percentile(steady_latencies, 50):7.1f} ms   "
                  f"p99 {percentile(steady_latencies, 99):7.1f} ms   (target p99 <= 500 ms)")

            print(f"\nsustained events/s / RQ no-op jobs/s: {sustained / noop_rate:.2f}x (target >= 1.0)")
        finally:
            for process in (web, *workers):
                process.terminate()
            for process in (web, *workers):
                process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
