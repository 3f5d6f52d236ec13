"""The full stack on this machine, without Docker, as compose.yaml runs it: PostgreSQL with
PgBouncer in front (transaction mode), Redis and Kafka started by scripts/services.py, the schema
migrated and the demo catalogue loaded, then the web side (WEB_HOSTS gunicorn hosts, 2 by default,
behind nginx and its micro-cache) and the background side (WORKERS worker.py, 2 by default), every
host and worker on the database through PgBouncer. Ctrl-C stops it all; the data lives in temp
folders and goes with it.

    scripts/stack                      # the store at http://127.0.0.1:5000
    PORT=8000 WEB_HOSTS=3 scripts/stack

Stripe settings in the environment (STRIPE_SECRET_KEY, ...) are passed on; without
them the demo gateway takes payments.
"""

import os
import secrets
import signal
import subprocess
import sys
import time

from scripts.services import (
    REPO,
    KafkaServer,
    NginxServer,
    PgBouncerServer,
    PostgresServer,
    RedisServer,
    free_port,
    wait_for_port,
)


def _stop_as_on_ctrl_c(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM (a service manager, `timeout`) stops it all as Ctrl-C does, leaving no server behind.
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)
    port = int(os.environ.get("PORT", "5000"))
    hosts, workers = int(os.environ.get("WEB_HOSTS", "2")), int(os.environ.get("WORKERS", "2"))
    print("==> starting PostgreSQL, PgBouncer, Redis and Kafka", flush=True)
    with PostgresServer(durable=True) as postgres, PgBouncerServer(postgres, pool_size=20) as pgbouncer, \
            RedisServer() as redis, KafkaServer() as kafka:
        kafka.create_topic(os.environ.get("KAFKA_PAYMENTS_TOPIC", "storefront.payments"))
        env = {
            **os.environ,
            # Every host and worker through PgBouncer in transaction mode; the migration straight (below).
            "DATABASE_URL": pgbouncer.url(),
            "DATABASE_POOLER": "pgbouncer",
            "REDIS_URL": redis.url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
            # nginx in front (deploy/nginx/): the client's address is one hop from the right.
            "TRUSTED_PROXY_COUNT": "1",
            # Throwaway data: without Stripe's keys, the demo gateway on purpose (no money taken).
            "DEMO_PAYMENTS": os.environ.get("DEMO_PAYMENTS") or ("0" if os.environ.get("STRIPE_SECRET_KEY") else "1"),
        }
        flask = [sys.executable, "-m", "flask", "--app", "storefront"]
        print("==> migrating and loading the demo catalogue", flush=True)
        subprocess.run([*flask, "db", "upgrade"], env={**env, "DATABASE_URL": postgres.url(), "DATABASE_POOLER": ""},
                       cwd=REPO, check=True)
        subprocess.run([*flask, "seed"], env=env, cwd=REPO, check=True)

        web_ports = [free_port() for _ in range(hosts)]
        webs = [subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{web_port}",
                                  "--workers", "2", "--threads", "4", "--worker-class", "gthread"],
                                 env=env, cwd=REPO) for web_port in web_ports]
        background = [subprocess.Popen([sys.executable, "worker.py"], env=env, cwd=REPO) for _ in range(workers)]
        for web, web_port in zip(webs, web_ports):
            wait_for_port(web_port, 30, "gunicorn", web)
        nginx = NginxServer([f"127.0.0.1:{web_port}" for web_port in web_ports])
        nginx.port = port
        nginx.start()
        print(f"\n==> the store is at http://127.0.0.1:{port}, through nginx to {hosts} gunicorn hosts, with {workers} "
              "workers (Ctrl-C stops everything)")
        print(f"    DATABASE_URL={pgbouncer.url()} (PgBouncer, transaction mode; PostgreSQL: {postgres.url()})\n"
              f"    REDIS_URL={redis.url}\n    KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
        processes = [*webs, *background]
        try:
            while all(process.poll() is None for process in processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
            print("\n==> stopping", flush=True)
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            nginx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
