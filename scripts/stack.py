"""The full stack on this machine, without Docker, as compose.yaml runs it: PostgreSQL with
PgBouncer in front (transaction mode), Redis and Kafka started by scripts/services.py, the schema
migrated and the demo catalogue loaded, then the web side (WEB_HOSTS gunicorn hosts, 2 by default,
behind nginx and its micro-cache) and the background side (WORKERS worker.py, 2 by default), every
host and worker on the database through PgBouncer. Ctrl-C stops it all; the data lives in temp
folders and goes with it.

    scripts/stack                      # the store at http://127.0.0.1:5000
    PORT=8000 WEB_HOSTS=3 scripts/stack

Stripe settings in the environment (STRIPE_SECRET_KEY, ...) are passed on; without
them the demo gateway takes payments. :class:`Stack` is the same, for a script that drives it
(bench/rehearsal.py): it can kill a host or a worker and start it again.
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


class Stack:
    """PostgreSQL behind PgBouncer, Redis, Kafka, ``hosts`` gunicorn hosts behind nginx and ``workers``
    worker.py, all started on entering and stopped on leaving. ``env`` adds to (or overrides) the
    settings every host and worker gets; ``seed`` loads the demo catalogue."""

    def __init__(self, hosts: int = 2, workers: int = 2, env: dict | None = None, seed: bool = True,
                 port: int | None = None, web_workers: int = 2, threads: int = 4, durable: bool = True,
                 log_folder=None):
        self.hosts, self.workers, self.extra_env, self.seed = hosts, workers, env or {}, seed
        self.port, self.web_workers, self.threads, self.durable = port, web_workers, threads, durable
        self.log_folder = log_folder  # each process's output to a file there, else to this terminal
        self.webs: list[subprocess.Popen | None] = []
        self.background: list[subprocess.Popen | None] = []

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        print("==> starting PostgreSQL, PgBouncer, Redis and Kafka", flush=True)
        self.postgres = PostgresServer(durable=self.durable).start()
        self.pgbouncer = PgBouncerServer(self.postgres, pool_size=20).start()
        self.redis = RedisServer().start()
        self.kafka = KafkaServer().start()
        self.kafka.create_topic(os.environ.get("KAFKA_PAYMENTS_TOPIC", "storefront.payments"))
        self.env = {
            **os.environ,
            # Every host and worker through PgBouncer in transaction mode; the migration straight (below).
            "DATABASE_URL": self.pgbouncer.url(),
            "DATABASE_POOLER": "pgbouncer",
            "REDIS_URL": self.redis.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
            # nginx in front (deploy/nginx/): the client's address is one hop from the right.
            "TRUSTED_PROXY_COUNT": "1",
            # Throwaway data: without Stripe's keys, the demo gateway on purpose (no money taken).
            "DEMO_PAYMENTS": os.environ.get("DEMO_PAYMENTS") or ("0" if os.environ.get("STRIPE_SECRET_KEY") else "1"),
            **self.extra_env,
        }
        print("==> migrating" + (" and loading the demo catalogue" if self.seed else ""), flush=True)
        self.flask("db", "upgrade", straight=True)
        if self.seed:
            self.flask("seed")
        self.web_ports = [free_port() for _ in range(self.hosts)]
        self.webs = [self._gunicorn(index) for index in range(self.hosts)]
        self.background = [self._worker(index) for index in range(self.workers)]
        for index in range(self.hosts):
            wait_for_port(self.web_ports[index], 60, "gunicorn", self.webs[index])
        self.nginx = NginxServer([f"127.0.0.1:{web_port}" for web_port in self.web_ports])
        if self.port:
            self.nginx.port = self.port
        self.nginx.start()

    @property
    def url(self) -> str:
        return self.nginx.url

    def flask(self, *args: str, straight: bool = False) -> subprocess.CompletedProcess:
        """``flask --app storefront ARGS`` with the stack's settings (``straight``: to PostgreSQL, not PgBouncer)."""
        env = {**self.env, "DATABASE_URL": self.postgres.url(), "DATABASE_POOLER": ""} if straight else self.env
        return subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", *args], env=env, cwd=REPO,
                              check=True, **self._output("flask"))

    def _output(self, name: str) -> dict:
        if self.log_folder is None:
            return {}
        log = open(os.path.join(self.log_folder, f"{name}.log"), "ab")
        return {"stdout": log, "stderr": subprocess.STDOUT}

    def _gunicorn(self, index: int) -> subprocess.Popen:
        # A session of its own: killing the host kills its master and its workers at once.
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{self.web_ports[index]}",
             "--workers", str(self.web_workers), "--threads", str(self.threads), "--worker-class", "gthread"],
            env=self.env, cwd=REPO, start_new_session=True, **self._output(f"web-{index}"))

    def _worker(self, index: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "worker.py"], env=self.env, cwd=REPO, start_new_session=True,
                                **self._output(f"worker-{index}"))

    def kill_host(self, index: int) -> None:
        """A web host lost at once (SIGKILL to its master and workers): nothing finishes what it was doing."""
        os.killpg(self.webs[index].pid, signal.SIGKILL)
        self.webs[index].wait()

    def start_host(self, index: int) -> None:
        self.webs[index] = self._gunicorn(index)
        wait_for_port(self.web_ports[index], 60, "gunicorn", self.webs[index])

    def kill_worker(self, index: int) -> None:
        os.killpg(self.background[index].pid, signal.SIGKILL)
        self.background[index].wait()

    def start_worker(self, index: int) -> None:
        self.background[index] = self._worker(index)

    def running(self) -> bool:
        return all(process.poll() is None for process in [*self.webs, *self.background])

    def stop(self) -> None:
        processes = [process for process in [*self.webs, *self.background] if process is not None]
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for server in ("nginx", "kafka", "redis", "pgbouncer", "postgres"):
            if hasattr(self, server):
                getattr(self, server).stop()


def _stop_as_on_ctrl_c(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM (a service manager, `timeout`) stops it all as Ctrl-C does, leaving no server behind.
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)
    port = int(os.environ.get("PORT", "5000"))
    hosts, workers = int(os.environ.get("WEB_HOSTS", "2")), int(os.environ.get("WORKERS", "2"))
    try:
        with Stack(hosts=hosts, workers=workers, port=port) as stack:
            print(f"\n==> the store is at http://127.0.0.1:{port}, through nginx to {hosts} gunicorn hosts, with "
                  f"{workers} workers (Ctrl-C stops everything)")
            print(f"    DATABASE_URL={stack.pgbouncer.url()} (PgBouncer, transaction mode; PostgreSQL: "
                  f"{stack.postgres.url()})\n    REDIS_URL={stack.redis.url}\n"
                  f"    KAFKA_BOOTSTRAP_SERVERS={stack.kafka.bootstrap_servers}", flush=True)
            try:
                while stack.running():
                    time.sleep(1)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
                print("\n==> stopping", flush=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
