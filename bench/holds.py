"""Benchmark: holds and stock checks against gunicorn + PostgreSQL on this machine.

Prints holds per second with p50/p99 latency on one hot product at 16 and 64
concurrent clients: with no other holds, with 100,000 live PENDING holds on the
product, and with 1,000,000 finished holds on it; then stock-check requests per
second (JSON and htmx fragment) beside the app's trivial JSON route (/healthz).

    .venv/bin/python -m bench.holds [--seconds 10] [--workers 2] [--threads 4]

Needs wrk (Debian's package; installed when missing and run as root) and
PostgreSQL's server binaries, like the tests. PostgreSQL runs with fsync on,
as in production, unless --no-fsync is given.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import requests

from scripts.services import PostgresServer, free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-secret-key"

HOLD_SCRIPT = textwrap.dedent("""
    -- Every request is a new visitor holding one unit of the same hot product.
    local counter = 0
    local prefix = ""
    math.randomseed(os.time())
    init = function(args)
      prefix = string.format("bench%08x", math.random(0, 0x7fffffff))
    end
    request = function()
      counter = counter + 1
      local body = string.format('{"productId":%d,"userId":"%s-%d"}', PRODUCT_ID, prefix, counter)
      return wrk.format("POST", "/api/reservations", {["Content-Type"] = "application/json"}, body)
    end
""")

FRAGMENT_SCRIPT = 'wrk.headers["HX-Request"] = "true"\n'


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is needed: apt-get install wrk")
    print("installing wrk from Debian's packages...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


def run(*args, **kwargs):
    return subprocess.run([str(a) for a in args], check=True, cwd=REPO, **kwargs)


def prepare_database(server: PostgresServer) -> dict[str, int]:
    env = {**os.environ, "DATABASE_URL": server.url(), "SECRET_KEY": SECRET_KEY}
    python = sys.executable
    run(python, "-m", "flask", "--app", "storefront", "db", "upgrade", env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname=storefront"
    products = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label in ("empty", "live", "finished"):
            products[label] = conn.execute(
                "INSERT INTO products (sku, name, description, price, currency, total_quantity, created_at)"
                " VALUES (%s, %s, '', 2500, 'usd', 2000000000, now()) RETURNING id",
                (f"BENCH-{label}", f"Bench {label}"),
            ).fetchone()[0]

        started = time.monotonic()
        print("seeding 100,000 live PENDING holds...", flush=True)
        conn.execute(
            "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
            " created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, 'live-' || n, 1, 2500, 'usd', 'PENDING',"
            " now() + interval '2 hours', now(), now() FROM generate_series(1, 100000) AS n",
            (products["live"],),
        )
        conn.execute("UPDATE products SET held_units = 100000 WHERE id = %s", (products["live"],))

        print("seeding 1,000,000 finished holds (completed, expired, cancelled)...", flush=True)
        conn.execute(
            "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
            " created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, 'done-' || n, 1, 2500, 'usd',"
            " (ARRAY['COMPLETED', 'EXPIRED', 'CANCELLED'])[1 + n %% 3],"
            " now() - interval '1 day', now() - interval '1 day', now() FROM generate_series(1, 1000000) AS n",
            (products["finished"],),
        )
        conn.execute(
            "UPDATE products SET sold_units = (SELECT count(*) FROM holds WHERE product_id = %s"
            " AND status = 'COMPLETED') WHERE id = %s",
            (products["finished"], products["finished"]),
        )
        conn.execute("VACUUM ANALYZE")
        print(f"seeded in {time.monotonic() - started:.1f}s", flush=True)
    return products


def start_gunicorn(server: PostgresServer, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # One address sends every hold here: lift the per-address limit, and the per-visitor
    # one stays as it is (each request is a new visitor).
    env = {**os.environ, "DATABASE_URL": server.url(), "SECRET_KEY": SECRET_KEY, "HOLD_RATE_LIMIT": "100000000/minute"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--threads", str(threads), "--worker-class", "gthread", "--log-level", "warning"],
        # gunicorn.conf.py applies, access log included (as in production); its lines are dropped.
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 30, "gunicorn", process)
    url = f"http://127.0.0.1:{port}"
    for _ in range(workers * threads * 2):
        requests.get(f"{url}/healthz", timeout=10).raise_for_status()
    return process, url


def wrk(wrk_path: str, url: str, connections: int, seconds: int, script: str | None = None) -> dict:
    command = [wrk_path, "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds}s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            lua.write(script)
    try:
        if script:
            command += ["-s", lua.name]
        output = subprocess.run(command + [url], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(lua.name)
    return parse_wrk(output)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def line(label: str, result: dict) -> str:
    extra = f"  non-2xx={result['non2xx']}" if result["non2xx"] else ""
    extra += f"  socket errors: {result['socket_errors']}" if result["socket_errors"] else ""
    return f"{label:<44} {result['rps']:>9.0f}/s   p50 {result['p50']:>7.2f} ms   p99 {result['p99']:>7.2f} ms{extra}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--no-fsync", action="store_true", help="run PostgreSQL with fsync off")
    args = parser.parse_args()

    wrk_path = ensure_wrk()
    print(f"cores: {os.cpu_count()}  gunicorn: {args.workers} workers x {args.threads} threads  "
          f"postgres fsync: {'off' if args.no_fsync else 'on'}  {args.seconds}s per run", flush=True)
    with PostgresServer(durable=not args.no_fsync) as server:
        products = prepare_database(server)
        gunicorn, url = start_gunicorn(server, args.workers, args.threads)
        try:
            # Reads first, while the machine is quiet; then the holds.
            check = f"{url}/api/inventory/check/{products['live']}"
            trivial = wrk(wrk_path, f"{url}/healthz", 16, args.seconds)
            print(line("trivial JSON route (/healthz), 16 clients", trivial), flush=True)
            stock_json = wrk(wrk_path, check, 16, args.seconds)
            print(line("stock check JSON, 16 clients", stock_json), flush=True)
            stock_fragment = wrk(wrk_path, check, 16, args.seconds, FRAGMENT_SCRIPT)
            print(line("stock check fragment, 16 clients", stock_fragment), flush=True)

            results = {}
            for label, product_id in (("no other holds", products["empty"]),
                                      ("100,000 live holds", products["live"]),
                                      ("1,000,000 finished holds", products["finished"])):
                for clients in (16, 64):
                    script = HOLD_SCRIPT.replace("PRODUCT_ID", str(product_id))
                    result = wrk(wrk_path, url, clients, args.seconds, script)
                    results[(label, clients)] = result
                    print(line(f"holds, {clients} clients, {label}", result), flush=True)

            base = results[("no other holds", 16)]["rps"]
            print()
            print(f"holds/s at 16 clients:                         {base:.0f} (target 4,000)")
            for label in ("100,000 live holds", "1,000,000 finished holds"):
                ratio = results[(label, 16)]["rps"] / base
                print(f"{label + ' / none, 16 clients:':<47}{ratio:.2f} (target 0.90)")
            print(f"stock check JSON / trivial route:              {stock_json['rps'] / trivial['rps']:.2f} (target 0.80)")
            print(f"stock check fragment / trivial route:          {stock_fragment['rps'] / trivial['rps']:.2f} (target 0.80)")
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
