"""gunicorn's production defaults for ``gunicorn wsgi:app`` (read from this folder).

Every value can be changed through the environment without editing this file.
"""

import multiprocessing
import os
import tempfile


def _whole_number(name: str, default: int, low: int = 1) -> int:
    """A setting from the environment; a malformed one stops gunicorn with one line naming it."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < low:
        raise SystemExit(f"gunicorn.conf.py: {name} must be a whole number, at least {low}")
    return int(value)


# Workers: processes × threads. Holds are short database transactions, so a few
# threads per process keep the CPU busy while others wait on PostgreSQL.
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = _whole_number("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
worker_class = "gthread"
threads = _whole_number("GUNICORN_THREADS", 4)

# A webhook waits at most 5 s for Kafka and a payment form at most ~30 s for Stripe.
timeout = _whole_number("GUNICORN_TIMEOUT", 60)
graceful_timeout = _whole_number("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then (the jitter keeps them from doing it together). Rarely: at
# 10,000 a worker serving a flash sale restarted every few seconds, and each restart costs
# a second of CPU to boot the app (measured: a bare route lost a third of its rate).
max_requests = _whole_number("GUNICORN_MAX_REQUESTS", 1000000, low=0)
max_requests_jitter = max_requests // 10

# Behind a reverse proxy: trust its X-Forwarded-* headers (the scheme, for URLs built
# with _external=True). Set it to the proxy's address; "*" only when nothing else can
# reach gunicorn. The client address for rate limiting comes from TRUSTED_PROXY_COUNT.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log: off unless GUNICORN_ACCESS_LOG names a file ("-" for stdout). /metrics counts
# every request by route and status with its latency, and the proxy in front logs access;
# gunicorn's own line cost a tenth of the rate of a trivial route (bench/holds.py).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s worker=%(p)s'
errorlog = "-"

# gunicorn's control socket (for gunicornc) defaults to one path per user, so a second
# shop started by the same user would take it over, and stopping either would remove it.
# Off unless GUNICORN_CONTROL_SOCKET names a path of this master's own.
control_socket_path = os.environ.get("GUNICORN_CONTROL_SOCKET")
if control_socket_path:
    control_socket = control_socket_path
else:
    control_socket_disable = True

# Prometheus: every worker writes its samples to one folder and /metrics adds them up.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="storefront-prometheus-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Every thread uses one database connection at a time, the app's pool's (storefront/database.py: the hot
# path borrows it too), so a setting of workers and threads that PostgreSQL cannot give that many
# connections would leave threads waiting, then answering 503. Said at start-up instead, with the
# numbers. Room is left for the background worker (worker.py).
BACKGROUND_CONNECTIONS = 10


def connections_needed(workers: int, threads: int) -> int:
    return workers * threads + BACKGROUND_CONNECTIONS


def on_starting(server):
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql") or os.environ.get("DATABASE_POOLER"):
        return  # behind a pooler, its pool (not these threads) is what PostgreSQL serves
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=5) as conn:
            allowed = int(conn.execute("SHOW max_connections").fetchone()[0]) - int(
                conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    except psycopg.Error as error:
        server.log.warning("could not ask PostgreSQL how many connections it allows (%s): not checked",
                           type(error).__name__)
        return
    needed = connections_needed(server.cfg.workers, server.cfg.threads)
    if needed > allowed:
        raise SystemExit(
            f"gunicorn.conf.py: {server.cfg.workers} workers x {server.cfg.threads} threads need {needed} database "
            f"connections (one a thread, {BACKGROUND_CONNECTIONS} for the worker); PostgreSQL allows {allowed}. "
            "Lower WEB_CONCURRENCY or GUNICORN_THREADS, raise max_connections, or put PgBouncer in front in "
            "transaction mode (DATABASE_POOLER=pgbouncer; docs/deploying.md).")


def post_fork(server, worker):
    # The app sizes its connection pools by the threads it runs with (--threads included).
    os.environ["GUNICORN_THREADS"] = str(server.cfg.threads)
