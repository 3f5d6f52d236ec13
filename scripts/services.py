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

    python -m scripts.services postgres     # start one and print its DATABASE_URL
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it listened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


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
        with open(self.base / "postgres.log", "wb") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.datadir), *settings],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.base, **self._as_service_user(),
            )
        wait_for_port(self.port, 30, "postgres", self.process)
        self.create_database("storefront")
        return self

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname={database}", autocommit=True) as conn:
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
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres").close()
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

    def _spawn(self, command: list[str], timeout: float = 30, **options) -> None:
        with open(self.base / f"{self.name}.log", "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.base, **options)
        wait_for_port(self.port, timeout, self.name, self.process)

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
        self._spawn([str(stripe_mock_binary()), "-http-port", str(self.port), "-https-port", str(free_port())])
        return self


class Localstripe(_Process):
    name = "localstripe"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Localstripe":
        self._spawn([sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"])
        return self


def main(argv: list[str]) -> int:
    if argv[1:] != ["postgres"]:
        print(__doc__)
        return 2
    with PostgresServer() as server:
        print(f"DATABASE_URL={server.url()}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.process.poll() is None:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
