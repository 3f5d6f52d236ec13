"""Benchmark: holds and stock checks against gunicorn + PostgreSQL on this machine.

Every figure stands beside a reference measured in the same run, under the same
gunicorn settings (bench/reference_apps.py): a bare Flask JSON route, and a
minimal app that makes the hold in one SQL statement and reads a product's
availability in one SELECT. Prints requests per second that got a 2xx/3xx
answer (anything else is printed apart), p50/p99 latency, the CPU time the
serving gunicorn and PostgreSQL used per answered request, the bytes of each
answer, and the ratios:
/healthz against the bare route; the stock check (JSON, fragment, and an
unchanged stock answered 304) against the one-SELECT read; holds at 16 and 64
clients against the one-statement hold, each run from the same table state;
holds with 100,000 live and 1,000,000 finished holds on the product against none.
The stock check and the holds also run in a minimal app doing the shop's own database
work (``same_work``), which splits each ratio in two: what the shop's rules cost the
database (same work / minimal) and what its layers cost (shop / same work). Every run
prints the WAL PostgreSQL wrote per answer. ``--only indexes`` (only when named) weighs the
holds table's indexes: the WAL each relation was written per hold in runs with every index
(pg_walinspect: records and full-page images apart), and holds per second with each index a
new hold writes to dropped, against the same holds with every index, back to back.

    .venv/bin/python -m bench.holds [--seconds 6] [--rounds 5] [--workers 2] [--threads 4] [--only holds ...]
    .venv/bin/python -m bench.holds --only indexes --rounds 3

Needs wrk (Debian's package; installed when missing and run as root) and
PostgreSQL's server binaries, like the tests. PostgreSQL runs with fsync on,
as in production, unless --no-fsync is given.
"""

import argparse
import contextlib
import functools
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

from scripts.services import PgBouncerServer, PostgresServer, free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = secrets.token_urlsafe(32)  # drawn: a key written here would be an example
# What every shop process of a bench reads besides its database: no Stripe account, so the demo
# gateway on purpose; one proxy in front, whose X-Forwarded-For gives each request its own client
# address, as a crowd has (from one address, MAX_HELD_UNITS_PER_ADDRESS would stop the bench
# and its lock would queue every hold behind the last).
SHOP_ENV = {"SECRET_KEY": SECRET_KEY, "DEMO_PAYMENTS": "1", "TRUSTED_PROXY_COUNT": "1"}

HOLD_SCRIPT = textwrap.dedent("""
    -- Every request is a new visitor holding one unit of the same hot product. Each wrk
    -- thread gets its own number in setup(): seeded from the clock alone, two threads
    -- would draw the same prefix and send the same visitors twice.
    local threads = 0
    function setup(thread)
      threads = threads + 1
      thread:set("thread_number", threads)
    end
    local counter = 0
    local prefix = ""
    init = function(args)
      prefix = string.format("bench%d-%d", os.time(), thread_number)
    end
    -- A client address per request, behind the one proxy the shop trusts (TRUSTED_PROXY_COUNT=1).
    address = function()
      return string.format("10.%d.%d.%d", thread_number % 256, math.floor(counter / 256) % 256, counter % 256)
    end
    request = function()
      counter = counter + 1
      local body = string.format('{"productId":%d,"userId":"%s-%d"}', PRODUCT_ID, prefix, counter)
      return wrk.format("POST", "/api/reservations",
                        {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address()}, body)
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
    env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV}
    python = sys.executable
    run(python, "-m", "flask", "--app", "storefront", "db", "upgrade", env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    dsn = server.dsn()
    products = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label in ("empty", "live", "finished"):
            products[label] = add_product(conn, f"BENCH-{label}", 2_000_000_000)

        started = time.monotonic()
        print("seeding 100,000 live PENDING holds...", flush=True)
        conn.execute(
            "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
            " created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, 'live-' || n, 1, 2500, 'usd', 'PENDING',"
            " now() + interval '2 hours', now(), now() FROM generate_series(1, 100000) AS n",
            (products["live"],),
        )

        print("seeding 1,000,000 finished holds (completed, expired, cancelled)...", flush=True)
        add_finished_holds(conn, products["finished"], "done", 1_000_000)
        recount(conn)
        conn.execute("VACUUM ANALYZE")
        # Write the seeding's dirty pages out now, not as a checkpoint in the middle of a run.
        conn.execute("CHECKPOINT")
        print(f"seeded in {time.monotonic() - started:.1f}s", flush=True)
    return products


def start_gunicorn(server: PostgresServer, workers: int, threads: int, app: str = "wsgi:app",
                   config: str | None = None, through: PgBouncerServer | None = None) -> tuple[subprocess.Popen, str]:
    """gunicorn serving ``app``: the shop with the production gunicorn.conf.py (its hooks, its
    metrics' shared files; no access log, as its default), a reference with ``config`` (an empty
    file: no hooks)."""
    port = free_port()
    # One address sends every hold here: lift the per-address rate limit; the per-visitor and
    # per-address hold limits stay as they are (each request is a new visitor from a new address).
    env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV, "HOLD_RATE_LIMIT": "100000000/minute"}
    if through is not None:  # the shop through PgBouncer in transaction mode, as a shop of many hosts runs
        env.update(DATABASE_URL=through.url(), DATABASE_POOLER="pgbouncer")
    command = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--threads", str(threads), "--worker-class", "gthread", "--log-level", "warning"]
    if config:
        command += ["--config", config]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, "gunicorn", process)
    url = f"http://127.0.0.1:{port}"
    for _ in range(workers * threads * 2):
        requests.get(f"{url}/healthz" if app == "wsgi:app" else url, timeout=10)
    return process, url


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (gunicorn's workers, PostgreSQL's backends)."""
    found, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    waiting += [int(child) for child in children.read().split()]
        except FileNotFoundError:
            pass  # gone meanwhile
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by a process tree (a process that ended meanwhile
    takes its time with it: PostgreSQL's backends and gunicorn's workers live through a run)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def wrk(wrk_path: str, url: str, connections: int, seconds: int, script: str | None = None,
        watched: dict[str, int] | None = None) -> dict:
    """Run wrk; with ``watched`` (a name per process id), also the CPU microseconds each of
    those process trees used per answered request: the figure a busy machine moves least."""
    cpu_before = {name: cpu_seconds(pid) for name, pid in (watched or {}).items()}
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
    result = parse_wrk(output)
    answered = max(result["rps"] * result["seconds"], 1)
    result["cpu_us"] = {name: (cpu_seconds(pid) - cpu_before[name]) / answered * 1e6
                        for name, pid in (watched or {}).items()}
    return result


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    # "3000 requests in 10.00s, 1.17MB read"
    total, seconds, unit, read, read_unit = re.search(
        r"(\d+) requests in ([\d.]+)(m?s), ([\d.]+)(B|KB|MB|GB) read", output).groups()
    seconds = float(seconds) / (1000 if unit == "ms" else 1)
    failed = int(errors.group(1)) if errors else 0
    read_bytes = float(read) * {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[read_unit]
    return {
        # Only answers in 2xx/3xx count: a 409, 429 or 5xx is printed apart, never as a hold.
        "rps": (int(total) - failed) / seconds,
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "seconds": seconds,
        "bytes_per_answer": read_bytes / max(int(total), 1),  # headers and body, as wrk read them
    }


def line(label: str, result: dict) -> str:
    extra = "".join(f"  {name} {used:.0f} us" for name, used in result.get("cpu_us", {}).items())
    extra += f"  {result['bytes_per_answer']:.0f} B/answer"
    extra += f"  WAL {result['wal_per_answer']:.0f} B/answer" if result.get("wal_per_answer") else ""
    extra += f"  non-2xx={result['non2xx']}" if result["non2xx"] else ""
    extra += f"  socket errors: {result['socket_errors']}" if result["socket_errors"] else ""
    return f"{label:<44} {result['rps']:>9.0f}/s   p50 {result['p50']:>7.2f} ms   p99 {result['p99']:>7.2f} ms{extra}"


def wal_position(server: PostgresServer) -> int:
    """Bytes of WAL PostgreSQL has written since its start: the difference over a run, per answer,
    is what each hold costs the log (and a replica, and a backup)."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])


def wal_by_relation(server: PostgresServer, span: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The WAL written between two positions, by the relation each record changed (its first block's):
    (bytes of the records themselves, bytes of the full-page images they carried)."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = conn.execute(
            "SELECT COALESCE(c.relname, '(no relation: commits, locks)'),"
            "       sum(w.record_length - w.fpi_length)::bigint, sum(w.fpi_length)::bigint"
            "  FROM pg_get_wal_records_info('0/0'::pg_lsn + %s::numeric,"
            "                               LEAST(pg_current_wal_flush_lsn(), '0/0'::pg_lsn + %s::numeric)) w"
            "  LEFT JOIN pg_class c ON c.relfilenode = substring(w.block_ref from 'rel \\d+/\\d+/(\\d+)')::oid"
            " GROUP BY 1", span).fetchall()
    return {name: (records, images) for name, records, images in rows}


def holds_indexes(server: PostgresServer) -> dict[str, str]:
    """Every index of the holds table but its primary key, each with the statement that makes it."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        return dict(conn.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = 'holds'::regclass AND NOT indisprimary ORDER BY 1").fetchall())


def reset(server: PostgresServer, product_id: int) -> None:
    """Every hold run starts from the same table state: the product's seeded holds (none, 100,000
    live or 1,000,000 finished) and nothing else, its counters as they say."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM holds WHERE product_id = %s AND user_id NOT LIKE 'live-%%'"
                     " AND user_id NOT LIKE 'done-%%'", (product_id,))
        recount(conn, product_id)
        conn.execute("VACUUM ANALYZE holds")
        conn.execute("CHECKPOINT")


# The reference app's stock (bench/reference_apps.py): a product's counters in one row, as the
# shop kept them before its stock was split into buckets.
REFERENCE_STOCK = """
CREATE TABLE IF NOT EXISTS reference_stock (
    product_id integer PRIMARY KEY REFERENCES products (id),
    total_units integer NOT NULL, held_units integer NOT NULL DEFAULT 0, sold_units integer NOT NULL DEFAULT 0,
    CHECK (held_units + sold_units <= total_units))
"""


def add_product(conn, sku: str, total: int, price: int = 2500) -> int:
    """A product of ``total`` units, in as many stock buckets as the shop makes for that total,
    and in the reference app's one row."""
    from storefront.inventory.stock import bucket_count

    product_id = conn.execute(
        "INSERT INTO products (sku, name, description, price, currency, created_at)"
        " VALUES (%s, %s, '', %s, 'usd', now()) RETURNING id", (sku, sku, price)).fetchone()[0]
    count = bucket_count(total, "postgresql")
    conn.execute("INSERT INTO stock_buckets (product_id, bucket, total_units)"
                 " SELECT %(id)s, b, %(total)s / %(count)s + CASE WHEN b < %(total)s %% %(count)s THEN 1 ELSE 0 END"
                 " FROM generate_series(0, %(count)s - 1) AS b", {"id": product_id, "total": total, "count": count})
    conn.execute(REFERENCE_STOCK)
    conn.execute("INSERT INTO reference_stock (product_id, total_units) VALUES (%s, %s)", (product_id, total))
    return product_id


def add_finished_holds(conn, product_id: int, prefix: str, count: int) -> None:
    """``count`` holds of a day ago, a third each completed, expired and cancelled, by visitors
    ``<prefix>-1`` to ``<prefix>-<count>`` (the counters are left to :func:`recount`)."""
    conn.execute(
        "INSERT INTO holds (id, product_id, user_id, quantity, amount, currency, status, expires_at,"
        " created_at, updated_at)"
        " SELECT gen_random_uuid(), %s, %s || '-' || n, 1, 2500, 'usd',"
        " (ARRAY['COMPLETED', 'EXPIRED', 'CANCELLED'])[1 + n %% 3],"
        " now() - interval '1 day', now() - interval '1 day', now() FROM generate_series(1, %s) AS n",
        (product_id, prefix, count),
    )


def recount(conn, product_id: int | None = None) -> None:
    """Every bucket's counters as the holds table says, in one pass over the holds (a subquery per
    bucket read a seeded product's holds once per bucket); the reference's, as its buckets say."""
    only = {"id": product_id}
    conn.execute("UPDATE stock_buckets b SET held_units = coalesce(h.held, 0), sold_units = coalesce(h.sold, 0)"
                 " FROM stock_buckets s LEFT JOIN ("
                 "   SELECT product_id, bucket, sum(quantity) FILTER (WHERE status = 'PENDING') AS held,"
                 "          sum(quantity) FILTER (WHERE status = 'COMPLETED') AS sold"
                 "   FROM holds WHERE %(id)s::integer IS NULL OR product_id = %(id)s GROUP BY product_id, bucket"
                 " ) h ON h.product_id = s.product_id AND h.bucket = s.bucket"
                 " WHERE b.product_id = s.product_id AND b.bucket = s.bucket"
                 " AND (%(id)s::integer IS NULL OR s.product_id = %(id)s)", only)
    # The reference's one row per product: the sum of the product's buckets, just counted.
    conn.execute("UPDATE reference_stock r SET held_units = b.held, sold_units = b.sold"
                 " FROM (SELECT product_id, sum(held_units) AS held, sum(sold_units) AS sold FROM stock_buckets"
                 "       GROUP BY product_id) b"
                 " WHERE r.product_id = b.product_id AND (%(id)s::integer IS NULL OR r.product_id = %(id)s)", only)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6, help="length of each run (default 6)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--no-fsync", action="store_true", help="run PostgreSQL with fsync off")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of each comparison; the median ratio counts (default 5)")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="the shop reaches PostgreSQL through PgBouncer in transaction mode (DATABASE_POOLER="
                             "pgbouncer, 20 server connections); the reference apps stay straight, so each ratio "
                             "says what the pooler and statements prepared on every run cost the shop")
    parser.add_argument("--only", nargs="+", choices=("path", "stock", "holds", "flat", "indexes"),
                        help="run only these comparisons: the request path, stock checks, holds at 16 and "
                             "64 clients, holds beside many others (default: these four), or the WAL of a hold by "
                             "relation and holds without each index (indexes: only when named)")
    args = parser.parse_args()
    wanted = set(args.only or ("path", "stock", "holds", "flat"))

    wrk_path = ensure_wrk()
    print(f"cores: {os.cpu_count()}  gunicorn: {args.workers} workers x {args.threads} threads  "
          f"postgres fsync: {'off' if args.no_fsync else 'on'}  {args.seconds}s per run, "
          f"{args.rounds} rounds  the shop {'through PgBouncer (transaction mode)' if args.pgbouncer else 'straight'}",
          flush=True)
    with PostgresServer(durable=not args.no_fsync) as server, \
            tempfile.NamedTemporaryFile("w", suffix=".py") as no_config, contextlib.ExitStack() as stack:
        products = prepare_database(server)
        bouncer = stack.enter_context(PgBouncerServer(server, pool_size=20)) if args.pgbouncer else None
        shop, url = start_gunicorn(server, args.workers, args.threads, through=bouncer)
        bare, bare_url = start_gunicorn(server, args.workers, args.threads, "bench.reference_apps:bare",
                                        no_config.name)
        minimal, minimal_url = start_gunicorn(server, args.workers, args.threads, "bench.reference_apps:minimal",
                                              no_config.name)
        same, same_url = start_gunicorn(server, args.workers, args.threads, "bench.reference_apps:same_work",
                                        no_config.name)
        try:
            servers = {urlsplit(url).netloc: shop.pid, urlsplit(bare_url).netloc: bare.pid,
                       urlsplit(minimal_url).netloc: minimal.pid, urlsplit(same_url).netloc: same.pid}

            def run(label, target_url, clients=16, script=None, before=None, warm=False):
                if before:
                    before()
                if warm:
                    # The same load for a while first, so that the pages it touches have been written
                    # whole to the WAL once since the checkpoint (as a busy shop's have): what the run
                    # then writes is each hold's own records.
                    wrk(wrk_path, target_url, clients, 3, script)
                app_pid = servers[urlsplit(target_url).netloc]
                wal_before = wal_position(server)
                result = wrk(wrk_path, target_url, clients, args.seconds, script,
                             {"cpu/request: app": app_pid, "postgres": server.process.pid})
                result["wal"] = (wal_before, wal_position(server))
                result["wal_per_answer"] = (result["wal"][1] - wal_before) / max(result["rps"] * result["seconds"], 1)
                print(line(label, result), flush=True)
                return result

            ratios: list[tuple[str, list[dict], float, float | None]] = []

            def compare(title, target, reference, *shops, p99_target=None):
                """Each round runs the reference and each shop figure back to back, so that every
                ratio is taken under the same load on this shared machine; every other round runs
                them in the opposite order, so that a machine slowing down (or speeding up) during
                a round does not always favour the same side. The median of the rounds' ratios
                is what counts."""
                rounds = []
                for number in range(args.rounds):
                    print(f"-- {title}, round {number + 1} of {args.rounds}", flush=True)
                    if number % 2 == 0:
                        base = run(*reference)
                        rounds.append([(run(*shop), base) for shop in shops])
                    else:
                        measured = [run(*shop) for shop in reversed(shops)][::-1]
                        base = run(*reference)
                        rounds.append([(result, base) for result in measured])
                for index, shop in enumerate(shops):
                    ratios.append((f"{shop[0]} / {reference[0]}", [r[index] for r in rounds], target, p99_target))
                return rounds

            def layers(title, rounds, same_index, shop_index):
                """The shop against the minimal app doing its own database work, from the same rounds."""
                ratios.append((title, [(r[shop_index][0], r[same_index][0]) for r in rounds], 0.9, None))

            check_path = f"/api/inventory/check/{products['live']}"
            etag = requests.get(url + check_path, headers={"HX-Request": "true"}, timeout=10).headers["ETag"]
            conditional = FRAGMENT_SCRIPT + f"wrk.headers[\"If-None-Match\"] = '{etag}'\n"
            if "path" in wanted:
                compare("the request path", 0.8, ("bare Flask JSON route", bare_url),
                        ("shop /healthz", f"{url}/healthz"))
            if "stock" in wanted:
                rounds = compare("stock checks", 0.8, ("one-SELECT stock read", minimal_url + check_path),
                                 ("the shop's stock SELECT, minimal app", same_url + check_path),
                                 ("stock check JSON", url + check_path),
                                 ("stock check fragment", url + check_path, 16, FRAGMENT_SCRIPT))
                layers("stock check JSON / the shop's SELECT in a minimal app", rounds, 0, 1)
                compare("an unchanged stock", 1.0, ("stock check fragment", url + check_path, 16, FRAGMENT_SCRIPT),
                        ("unchanged stock (304)", url + check_path, 16, conditional))
            empty_script = HOLD_SCRIPT.replace("PRODUCT_ID", str(products["empty"]))
            fresh = lambda: reset(server, products["empty"])  # noqa: E731
            for clients in (16, 64) if "holds" in wanted else ():
                rounds = compare(
                    f"holds at {clients} clients", 0.8,
                    (f"one-statement hold, {clients} clients", minimal_url, clients, empty_script, fresh),
                    (f"the shop's hold function, minimal app, {clients} clients", same_url, clients, empty_script,
                     fresh),
                    (f"shop holds, {clients} clients", url, clients, empty_script, fresh), p99_target=1.5)
                layers(f"shop holds / the shop's function in a minimal app, {clients} clients", rounds, 0, 1)
            if "flat" in wanted:
                compare("holds beside many others", 0.9, ("shop holds, no other holds", url, 16, empty_script, fresh),
                        *[(f"shop holds, {PRODUCT_LABELS[label]}", url, 16,
                           HOLD_SCRIPT.replace("PRODUCT_ID", str(products[label])),
                           functools.partial(reset, server, products[label])) for label in ("live", "finished")])

            weighed = {}
            attributed, weighed = [], {}
            if "indexes" in wanted:
                definitions = holds_indexes(server)
                print("-- the WAL of a hold by relation, with every index", flush=True)
                for _ in range(args.rounds):
                    every = run("shop holds, every index (after 3 s of it)", url, 16, empty_script, fresh, warm=True)
                    attributed.append((every, wal_by_relation(server, every["wal"])))
                # Only an index a new hold writes to can cost it anything: each is dropped in turn, its
                # holds measured back to back with the same holds on every index (each round in turn
                # the other way round), both right after the same reset.
                written = [name for name in definitions if any(name in shares for _, shares in attributed)]
                for name in written:
                    print(f"-- holds without {name} / with every index", flush=True)
                    weighed[name] = []
                    for number in range(args.rounds):
                        def without():
                            server.sql(f"DROP INDEX {name}", "storefront")
                            try:
                                return run(f"shop holds without {name}", url, 16, empty_script, fresh)
                            finally:
                                server.sql(definitions[name], "storefront")

                        def every():
                            return run("shop holds, every index", url, 16, empty_script, fresh)
                        if number % 2 == 0:
                            weighed[name].append((without(), every()))
                        else:
                            base = every()
                            weighed[name].append((without(), base))
                weighed.update({name: None for name in definitions if name not in written})

            print(f"\nratios, median of {args.rounds} rounds (each round's figures measured back to back):")
            for title, pairs, target, p99_target in ratios:
                rate = statistics.median(shop["rps"] / base["rps"] for shop, base in pairs)
                text = f"{title:<64} {rate:5.2f}x (target >= {target:.1f})"
                if p99_target is not None:
                    p99 = statistics.median(shop["p99"] / base["p99"] for shop, base in pairs)
                    text += f"   p99 {p99:5.2f}x (target <= {p99_target:.1f})"
                print(text + "   rounds: " + ", ".join(f"{shop['rps'] / base['rps']:.2f}" for shop, base in pairs))
            if attributed:
                def per_hold(name, part):
                    return statistics.median(shares.get(name, (0, 0))[part] / (every["rps"] * every["seconds"])
                                             for every, shares in attributed)

                print(f"\nthe WAL of a hold by relation, median of {args.rounds} runs with every index (16 clients, "
                      "after 3 s of the same load since the checkpoint, so each page's first image is mostly behind):")
                relations = sorted({name for _, shares in attributed for name in shares})
                total = sum(per_hold(name, 0) + per_hold(name, 1) for name in relations)
                for name in relations:
                    records, images = per_hold(name, 0), per_hold(name, 1)
                    if records + images >= 1:
                        print(f"{name:<36} records {records:6.0f} B/hold   full-page images {images:6.0f} B/hold")
                print(f"{'every relation':<36} {total:6.0f} B/hold")
                print(f"\neach index of the holds table: holds/s without it / with every index, median of {args.rounds}"
                      " rounds:")
                for name, pairs in sorted(weighed.items()):
                    if pairs is None:
                        print(f"{name:<36} a new hold writes nothing to it")
                        continue
                    print(f"{name:<36} {statistics.median(w['rps'] / e['rps'] for w, e in pairs):5.2f}x   rounds: "
                          + ", ".join(f"{w['rps'] / e['rps']:.2f}" for w, e in pairs))
        finally:
            for process in (shop, bare, minimal, same):
                process.terminate()
                process.wait(timeout=20)
    return 0


PRODUCT_LABELS = {"live": "100,000 live holds", "finished": "1,000,000 finished holds"}


if __name__ == "__main__":
    sys.exit(main())
