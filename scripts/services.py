"""Throwaway local services for tests, benchmarks and a full local stack, without Docker.

Each server gets a fresh folder under the system temp folder and a free loopback
port, and is stopped and deleted when its context ends.

- PostgreSQL, from Debian's packages (``apt-get install postgresql``). ``initdb``
  refuses to run as root, so when we are root it runs, and the server too, as the
  ``postgres`` user.
- stripe-mock, Stripe's own mock of its API (stateless: it checks request shapes),
  built with ``go install`` at a pinned version into ``.cache/bin``.
- localstripe, a stateful Stripe stand-in from PyPI, for flows that need state
  (create, confirm, refund) and for signed webhooks sent back to us.
- Redis, from Debian's packages (``apt-get install redis-server``), with its
  append-only file on, as RQ's jobs deserve.
- Apache Kafka in KRaft mode (one node, broker and controller), on the JDK that is
  here, from the ``org.apache.kafka:kafka_2.13`` jars that Maven fetches once into
  ``.cache/kafka`` (see scripts/kafka/pom.xml).

    python -m scripts.services stack        # PostgreSQL, Redis and Kafka; prints the settings
"""

import base64
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    """A loopback port free at this moment. Another process may take it before our server binds
    it: start servers through :func:`start_on_free_port`, which tries again on a new one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PortTaken(RuntimeError):
    """The server could not bind its port: someone took it between our probe and its start."""


# How each server says so: PostgreSQL, Redis, Kafka (Java), Go, aiohttp and gunicorn.
_BIND_FAILED = re.compile(r"address already in use|connection in use|could not bind|bindexception", re.IGNORECASE)
PORT_ATTEMPTS = 5


def start_on_free_port(start, new_ports, log_path: Path | None = None) -> None:
    """Run ``start()`` (which launches a server on its port and waits for it); when the server
    dies because the port was taken meanwhile, call ``new_ports()`` and start again."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            start()
            return
        except (RuntimeError, TimeoutError) as failure:
            said = log_path.read_text(errors="replace") if log_path is not None and log_path.exists() else ""
            if attempt == PORT_ATTEMPTS or not (_BIND_FAILED.search(said) or isinstance(failure, PortTaken)):
                raise
            new_ports()


def wait_for_port(port: int, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    """Wait until ``process`` listens on ``port``: someone listening there is not enough, since
    another process may have taken the port meanwhile (then ours exits, and this raises)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it listened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            if process is None or _listens(process.pid, port):
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (any address, IPv4 or IPv6;
    read from Linux's /proc). True where /proc cannot tell (no /proc, or not ours to read); false
    for a process that is gone, which listens on nothing (a server that lost its port exits)."""
    try:
        table = [row for name in ("tcp", "tcp6") for row in Path(f"/proc/net/{name}").read_text().splitlines()[1:]]
    except OSError:
        return True
    inodes = {fields[9] for fields in (row.split() for row in table)
              if fields[1].endswith(f":{port:04X}") and fields[3] == "0A"}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return True
    except OSError:
        return False
    held = set()
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile, or the process gone
            held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return any(f"socket:[{inode}]" in held for inode in inodes)


def _postgres_bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        bindir = Path(subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return Path(candidates[-1]).parent


class PostgresServer:
    """One PostgreSQL cluster in a temp folder, on a free loopback port.

    ``durable=False`` (tests) turns fsync off: the data is thrown away anyway.
    """

    def __init__(self, durable: bool = False, max_connections: int = 300):
        self.durable = durable
        self.max_connections = max_connections
        self.port = free_port()
        self.bindir = _postgres_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="storefront-pg-"))
        self.datadir = self.base / "data"
        self.process: subprocess.Popen | None = None
        self._as_user = self._service_user()

    @staticmethod
    def _service_user():
        if os.geteuid() != 0:
            return None
        return pwd.getpwnam("postgres")

    def _as_service_user(self) -> dict:
        """Popen arguments that run a command as the postgres user when we are root.

        Popen drops the privileges itself, so signals reach postgres directly."""
        if self._as_user is None:
            return {}
        return {"user": self._as_user.pw_uid, "group": self._as_user.pw_gid, "extra_groups": []}

    def url(self, database: str = "storefront") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "storefront") -> str:
        """The same database as :meth:`url`, as psycopg's own connection string."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def start(self) -> "PostgresServer":
        if self._as_user is not None:
            os.chown(self.base, self._as_user.pw_uid, self._as_user.pw_gid)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            check=True, stdout=subprocess.DEVNULL, cwd=self.base, **self._as_service_user(),
        )
        settings = [
            "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={self.base}", "-c", f"max_connections={self.max_connections}",
            "-c", "shared_buffers=256MB", "-c", "log_min_messages=warning",
        ]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._settings = settings

        def new_port():
            self.port = free_port()
            self._settings[self._settings.index(next(v for v in self._settings if v.startswith("port=")))] = \
                f"port={self.port}"

        start_on_free_port(self._launch, new_port, self.base / "postgres.log")
        self.create_database("storefront")
        return self

    def _launch(self) -> None:
        with open(self.base / "postgres.log", "wb") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.datadir), *self._settings],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.base, **self._as_service_user(),
            )
        wait_for_port(self.port, 30, "postgres", self.process)

    def stop_keeping_data(self) -> None:
        """Stop the server as a restart would (fast shutdown: every session is ended)."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=20)

    def start_again(self) -> None:
        """Start the stopped server on the same port and data."""
        self._launch()
        self._connect_when_ready()

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        self._connect_when_ready()
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _connect_when_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn("postgres")).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, then exits
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


REPO = Path(__file__).resolve().parent.parent
CACHE_BIN = REPO / ".cache" / "bin"
STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock@v0.203.0"


class _Process:
    """A server process of ours, logging to a file in its own temp folder."""

    name = "server"

    def __init__(self):
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix=f"storefront-{self.name}-"))
        self.process: subprocess.Popen | None = None

    def _spawn(self, command, timeout: float = 30, **options) -> None:
        """Start ``command()`` (built from the current port) and wait for it to listen; on a port
        taken meanwhile, again on new ports."""
        log_path = self.base / f"{self.name}.log"

        def launch():
            with open(log_path, "wb") as log:
                self.process = subprocess.Popen(command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.base,
                                                **options)
            wait_for_port(self.port, timeout, self.name, self.process)

        start_on_free_port(launch, self._new_ports, log_path)

    def _new_ports(self) -> None:
        self.port = free_port()

    @property
    def log(self) -> str:
        return (self.base / f"{self.name}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stripe_mock_binary() -> Path:
    """stripe-mock, built once at its pinned version into .cache/bin."""
    found = shutil.which("stripe-mock", path=f"{CACHE_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return Path(found)
    if not shutil.which("go"):
        raise RuntimeError("stripe-mock needs Go to build it (go install " + STRIPE_MOCK_MODULE + ")")
    CACHE_BIN.mkdir(parents=True, exist_ok=True)
    print(f"building {STRIPE_MOCK_MODULE} into {CACHE_BIN} ...", file=sys.stderr, flush=True)
    subprocess.run(["go", "install", STRIPE_MOCK_MODULE], check=True, env={**os.environ, "GOBIN": str(CACHE_BIN)})
    return CACHE_BIN / "stripe-mock"


class StripeMock(_Process):
    name = "stripe-mock"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StripeMock":
        binary = stripe_mock_binary()
        self._spawn(lambda: [str(binary), "-http-port", str(self.port), "-https-port", str(free_port())])
        return self


class Localstripe(_Process):
    name = "localstripe"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Localstripe":
        self._spawn(lambda: [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"])
        return self


class RedisServer(_Process):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self._spawn(lambda: [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
                     "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"])
        return self


PGBOUNCER_TEMPLATE = REPO / "deploy" / "pgbouncer" / "pgbouncer.ini.template"


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not found:
        raise RuntimeError("pgbouncer not found: apt-get install pgbouncer (scripts/bootstrap --services does)")
    return found


class PgBouncerServer(_Process):
    """Debian's PgBouncer (1.18 on bookworm) in front of a :class:`PostgresServer`, in transaction
    pooling: a client's server connection is its own for one transaction only, so nothing of a
    session (a server-side prepared statement, a ``SET``, a lock held outside a transaction)
    survives from one transaction to the next. ``pool_size`` server connections per database and
    user: few, so that clients share them as they would behind a busy pooler. PgBouncer refuses to
    run as root: as root, it runs as the postgres user, as PostgreSQL does."""

    name = "pgbouncer"

    def __init__(self, postgres: "PostgresServer", pool_size: int = 4):
        super().__init__()
        self.postgres = postgres
        self.pool_size = pool_size

    def url(self, database: str = "storefront") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _config(self) -> Path:
        (self.base / "users.txt").write_text('"postgres" ""\n')
        # As compose's pgbouncer service does (envsubst): the template's ${VARIABLES} filled in.
        values = {"PGBOUNCER_SERVER": f"host=127.0.0.1 port={self.postgres.port} user=postgres",
                  "PGBOUNCER_LISTEN_ADDR": "127.0.0.1", "PGBOUNCER_LISTEN_PORT": str(self.port),
                  "PGBOUNCER_POOL_SIZE": str(self.pool_size), "PGBOUNCER_DIR": str(self.base)}
        ini = self.base / "pgbouncer.ini"
        ini.write_text(re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], PGBOUNCER_TEMPLATE.read_text()))
        return ini

    def start(self) -> "PgBouncerServer":
        binary = pgbouncer_binary()
        user = PostgresServer._service_user()
        if user is not None:
            os.chown(self.base, user.pw_uid, user.pw_gid)
        options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user is not None else {}
        self._spawn(lambda: [binary, str(self._config())], **options)
        return self


NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "storefront.conf.template"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("nginx not found: apt-get install nginx (scripts/bootstrap --services does)")
    return found


class NginxServer(_Process):
    """nginx in front of the shop at ``upstream`` (host:port, or several: many hosts, taken in turn), with
    the deployment's own server block (deploy/nginx/storefront.conf.template) and its micro-cache, in a
    folder of its own."""

    name = "nginx"

    def __init__(self, upstream: str | list[str], worker_processes: int = 1):
        super().__init__()
        self.upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
        self.worker_processes = worker_processes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        # As the official image's envsubst does: the named ${VARIABLES} only, nginx's own $variables left alone.
        # Several hosts: the template's one "server ${STOREFRONT_UPSTREAM};" line becomes one per host (in
        # compose, one name that resolves to every replica does the same).
        values = {"NGINX_CACHE_DIR": str(self.base / "cache"),
                  "STOREFRONT_UPSTREAM": ";\n    server ".join(self.upstreams),
                  "NGINX_LISTEN": f"127.0.0.1:{self.port}"}
        server_block = re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], NGINX_TEMPLATE.read_text())
        (self.base / "storefront.conf").write_text(server_block)
        user = "user root;\n" if os.geteuid() == 0 else ""  # its workers write the cache folder, ours
        config = self.base / "nginx.conf"
        config.write_text(
            f"{user}worker_processes {self.worker_processes};\npid {self.base}/nginx.pid;\n"
            f"error_log {self.base}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"  access_log off;\n  client_body_temp_path {self.base}/body;\n  proxy_temp_path {self.base}/proxy;\n"
            f"  fastcgi_temp_path {self.base}/fastcgi;\n  uwsgi_temp_path {self.base}/uwsgi;\n"
            f"  scgi_temp_path {self.base}/scgi;\n"
            "  default_type application/octet-stream;\n"
            f"  include {self.base}/storefront.conf;\n"
            "}\n")
        return config

    def start(self) -> "NginxServer":
        binary = nginx_binary()
        self._spawn(lambda: [binary, "-p", str(self.base), "-c", str(self._config()), "-g", "daemon off;"])
        return self


KAFKA_LIBS = REPO / ".cache" / "kafka" / "libs"
KAFKA_POM = REPO / "scripts" / "kafka" / "pom.xml"

KAFKA_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
"""


def kafka_libs() -> Path:
    """The broker's jars, fetched from Maven Central once (mvn dependency:copy-dependencies)."""
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        print("fetching the Apache Kafka broker with Maven into .cache/kafka ...", file=sys.stderr, flush=True)
        subprocess.run(
            ["mvn", "-B", "-q", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={KAFKA_LIBS}", "-DincludeScope=runtime"],
            check=True,
        )
    return KAFKA_LIBS


class KafkaServer(_Process):
    """One KRaft node on loopback. stop() keeps its data, so start() can bring it back as it was."""

    name = "kafka"

    def __init__(self, heap_mb: int = 512):
        super().__init__()
        self.controller_port = free_port()
        self.heap_mb = heap_mb
        self.formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, main_class: str, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap_mb}m", f"-Xms{self.heap_mb // 2}m", "-XX:+UseSerialGC",
                f"-Dlog4j.configuration=file:{self.base / 'log4j.properties'}",
                "-cp", f"{kafka_libs()}/*", main_class, *args]

    def _configure(self) -> None:
        (self.base / "log4j.properties").write_text(KAFKA_LOG4J)
        self._write_properties()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                  "-c", str(self.base / "server.properties")),
                       check=True, stdout=subprocess.DEVNULL, cwd=self.base)
        self.formatted = True

    def _new_ports(self) -> None:
        super()._new_ports()
        self.controller_port = free_port()
        self._write_properties()

    def _write_properties(self) -> None:
        (self.base / "server.properties").write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.base / 'data'}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            # Three partitions, not fifty: a group's first lookup creates this topic, and on
            # two busy cores fifty partitions took longer than a consumer waits.
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
        ]) + "\n")

    def start(self) -> "KafkaServer":
        if not self.formatted:
            self._configure()
        self._spawn(lambda: self._java("kafka.Kafka", str(self.base / "server.properties")), timeout=90)
        return self

    def stop(self, keep_data: bool = False) -> None:
        if keep_data:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                self.process.wait(timeout=60)
            return
        super().stop()

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=30000)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()


def main(argv: list[str]) -> int:
    """Start the full local stack and print the settings that point the store at it."""
    if argv[1:] != ["stack"]:
        print(__doc__)
        return 2
    with PostgresServer(durable=True) as postgres, RedisServer() as redis, KafkaServer() as kafka:
        kafka.create_topic("storefront.payments")
        print(f"export DATABASE_URL={postgres.url()}")
        print(f"export REDIS_URL={redis.url}")
        print(f"export KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.process.poll() is None for p in (postgres, redis, kafka)):
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
