"""A drop on one product, measured beside its references in the same run.

- database alone: pgbench driving the shop's hold statement (``storefront_place_hold``) on ONE
  product, against the same statement spread over 64 products, at 16 and 64 connections;
- through HTTP: holds on one product against holds spread over 64, 64 connections, gunicorn
  with 2 workers x 32 threads (as a few web hosts would send them);
- refusals: holds on a sold-out product against the stock check of that product, in the
  database alone (the function against the stock SELECT) and through HTTP; and, for context
  (no target), the shop's HTTP refusal against a minimal Flask app's refusal of the same
  request (bench/reference_apps.py: one guarded UPDATE that matches no row), so that what a
  refusal costs any app (a POST with a JSON body) is told apart from what the shop adds; and
  the shop's refusal against the minimal app running the shop's own hold function
  (``same_work``): what the shop's layers add to a refusal;
- the waiting room: a hold on a queued product (the owner's admitted place looked at and its pass
  spent, in the same statement) against the same hold on a product without a queue, in the
  database alone at 16 connections, the same visitor ids on both sides, 200,000 places
  admitted afresh before each run on both sides; and the ranking at the
  start, one statement over 100,000 entries, against the least any ranking must do (one UPDATE
  that writes each of those rows once).

Every figure is printed with its p99; ratios are medians over rounds run back to back (every
other round in the opposite order); after each hold run the product counters are checked
against the holds table (held = units of PENDING holds, sold = units of COMPLETED ones). Every
run starts from the same table state: a shop with 200,000 finished holds, analysed, and none of
the holds the runs before it made.

    .venv/bin/python -m bench.drop              # --seconds 6 --rounds 3
    .venv/bin/python -m bench.drop --only queue # the waiting room's figures alone
    .venv/bin/python -m bench.drop --only refusals # the HTTP refusals' figures alone
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg

from bench.holds import (HOLD_SCRIPT, SHOP_ENV, add_finished_holds, add_product, ensure_wrk, recount,
                         start_gunicorn, wrk)
from scripts.services import PostgresServer, _postgres_bindir
from storefront.inventory.stock import _STOCK_OF_ON_POSTGRESQL

REPO = Path(__file__).resolve().parent.parent
SPREAD = 64
PAST_HOLDS = 200_000
PGBENCH_HOLD = textwrap.dedent("""\
    \\set n random(1, 2000000000)
    {choose_product}
    SELECT outcome FROM storefront_place_hold(gen_random_uuid(), :product,
        ('pgbench-' || :client_id || '-' || :n)::varchar, ''::varchar,
        ('198.18.' || (:n % 256) || '.' || (:n / 256 % 256))::varchar, NULL, 1, 600, 1000000, 1000000, 0, 1, NULL, NULL, 0, 0, 0, 0);
""")
# A hold by one of the admitted places (or, on a product without a queue, by the same visitor ids).
ADMITTED = 200_000
RANKED = 100_000
PGBENCH_QUEUED_HOLD = textwrap.dedent("""\
    \\set k random(1, {admitted})
    SELECT outcome FROM storefront_place_hold(gen_random_uuid(), {{product}}, ('queued-' || :k)::varchar,
        ''::varchar, ('198.18.' || (:k % 256) || '.' || (:k / 256 % 256))::varchar, NULL, 1, 600, 1000000, 1000000,
        0, 1, NULL, NULL, 0, 0, 0, 0);
""").format(admitted=ADMITTED)
PGBENCH_STOCK = "\\set product {product}\n" + _STOCK_OF_ON_POSTGRESQL.replace("%(product)s", ":product") + ";\n"
SPREAD_LUA = textwrap.dedent("""
    math.randomseed(os.time() + (thread_number or 0))
    request = function()
      counter = counter + 1
      local product = FIRST + math.random(0, SPREAD - 1)
      local body = string.format('{"productId":%d,"userId":"%s-%d"}', product, prefix, counter)
      return wrk.format("POST", "/api/reservations",
                        {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address()}, body)
    end
""")


def prepare(server: PostgresServer) -> dict:
    env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV}
    subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", "db", "upgrade"], cwd=REPO, env=env,
                   check=True, capture_output=True)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        def product(label: str, total: int) -> int:
            return add_product(conn, f"DROP-{label}", total)

        ids = {"one": product("one", 2_000_000_000)}
        spread = [product(f"spread-{n}", 2_000_000_000) for n in range(SPREAD)]
        ids["first"], ids["last"] = spread[0], spread[-1]
        assert spread == list(range(spread[0], spread[0] + SPREAD))
        ids["sold_out"] = product("sold-out", 1)
        # Sold out: its one unit held by a shopper who has not paid yet.
        conn.execute("SELECT storefront_place_hold(gen_random_uuid(), %s, 'the-one-buyer', '', '127.0.0.1', NULL, 1,"
                     " 3600, 10, 20, 0, 1, NULL, NULL, 0, 0, 0, 0)", (ids["sold_out"],))
        # A shop with a past, as a drop meets it: every run's connections plan on the statistics
        # of a table of finished holds, not on those of the empty table a reset would leave, whose
        # plans read the whole table on every hold (docs/holds.md, "Plans made on a quiet shop").
        ids["queued"] = product("queued", 2_000_000_000)
        ids["unqueued"] = product("unqueued", 2_000_000_000)
        ids["ranked"] = product("ranked", 1)
        print(f"seeding {ADMITTED:,} admitted places and {RANKED:,} to rank...", flush=True)
        add_line(conn, ids["queued"], ADMITTED, admitted=True)
        add_line(conn, ids["ranked"], RANKED, admitted=False)
        print(f"seeding {PAST_HOLDS:,} finished holds...", flush=True)
        add_finished_holds(conn, product("past", 2_000_000_000), "past", PAST_HOLDS)
        recount(conn)
        conn.execute("VACUUM ANALYZE")
    return ids


def add_line(conn, product_id: int, entries: int, *, admitted: bool) -> None:
    """A queued product that started a second ago, with ``entries`` places: all admitted with a
    day's pass (visitor ids queued-1, queued-2, ...), or joined before the start and not ranked yet."""
    conn.execute("UPDATE products SET queued = true, starts_at = now() - interval '1 second' WHERE id = %s",
                 (product_id,))
    conn.execute("INSERT INTO queues (product_id, seed, seed_hash, opened_at, ranked_at, last_position,"
                 " admitted_through) VALUES (%s, sha256('bench'::bytea), '', now(), CASE WHEN %s THEN now() END,"
                 " %s, %s)", (product_id, admitted, entries if admitted else 0, entries if admitted else 0))
    conn.execute(
        "INSERT INTO queue_entries (id, product_id, user_id, browser_id, client_address, joined_at, rank_key,"
        " position, admitted_at, pass_expires_at)"
        " SELECT gen_random_uuid(), %(product)s, %(prefix)s || k, '', '198.18.' || (k %% 256) || '.' || (k / 256 %% 256),"
        " now(), sha256(random()::text::bytea), CASE WHEN %(admitted)s THEN k END,"
        " CASE WHEN %(admitted)s THEN now() END, CASE WHEN %(admitted)s THEN now() + interval '1 day' END"
        " FROM generate_series(1, %(entries)s) AS k",
        {"product": product_id, "prefix": "queued-" if admitted else "ranked-", "admitted": admitted,
         "entries": entries})


def readmit(server: PostgresServer, product_id: int) -> None:
    """Every place admitted afresh, after the reset's checkpoint, as admission writes them before they
    hold: a hold then writes a page that admission wrote moments before, as on the day (a page
    first written since a checkpoint costs its whole image in the WAL). Both sides run after it."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("UPDATE queue_entries SET admitted_at = now(), pass_expires_at = now() + interval '1 day',"
                     " held_at = NULL WHERE product_id = %s", (product_id,))


def rank(server: PostgresServer, product_id: int, rounds: int) -> list[tuple[float, float]]:
    """The ranking statement over the product's entries, and the reference: one UPDATE writing each once."""
    from storefront.inventory.queue import _RANK

    ranking = _RANK.text.replace(":product", "%(product)s").replace(":behind", "0")
    reference = "UPDATE queue_entries SET position = 0 WHERE product_id = %(product)s"
    times = []
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for _ in range(rounds):
            pair = []
            for statement in (ranking, reference):
                conn.execute("UPDATE queue_entries SET position = NULL WHERE product_id = %s", (product_id,))
                conn.execute("VACUUM ANALYZE queue_entries")
                started = time.perf_counter()
                with conn.transaction():
                    placed = conn.execute(statement, {"product": product_id}).rowcount
                pair.append(time.perf_counter() - started)
                assert placed == RANKED, placed
            ranked = conn.execute("SELECT count(DISTINCT position) FROM queue_entries WHERE product_id = %s",
                                  (product_id,)).fetchone()[0]
            times.append(tuple(pair))
            print(f"  ranking {RANKED:,} entries {pair[0] * 1000:8.0f} ms   one UPDATE of each"
                  f" {pair[1] * 1000:8.0f} ms   ({ranked} distinct positions after the reference)", flush=True)
    return times


# The holds the runs make: not the sold-out product's one, nor the shop's past.
MADE_BY_THE_RUNS = "user_id <> 'the-one-buyer' AND user_id NOT LIKE 'past-%'"


def reset(server: PostgresServer) -> None:
    """Every hold run starts from the same table state: the bench's holds gone, counters as the holds say.

    The tables are locked first: holds of the last run still queued in gunicorn when wrk stopped
    finish before the reset (or wait for it), never in the middle of it. Such a hold may hold
    one of the tables and want another the reset has locked already; PostgreSQL then ends one
    of the two, and when it is the reset, the reset goes again."""
    for attempt in range(1, 6):
        try:
            with psycopg.connect(server.dsn()) as conn:
                conn.execute("LOCK TABLE products, stock_buckets, holds, queue_entries IN ACCESS EXCLUSIVE MODE")
                conn.execute(f"DELETE FROM holds WHERE {MADE_BY_THE_RUNS}")
                conn.execute("UPDATE queue_entries SET held_at = NULL WHERE held_at IS NOT NULL")
                recount(conn)
                conn.commit()
            break
        except psycopg.errors.DeadlockDetected:
            if attempt == 5:
                raise
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE holds")
        conn.execute("CHECKPOINT")


def consistent(server: PostgresServer) -> str:
    """Every bucket's counters against the holds table, and the holds made against the
    transactions pgbench counted (a ``needs_lock`` answer makes no hold: the Python path would)."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        wrong = conn.execute(
            "SELECT b.product_id, b.bucket, b.held_units, b.sold_units, b.total_units,"
            " coalesce(sum(h.quantity) FILTER (WHERE h.status = 'PENDING'), 0),"
            " coalesce(sum(h.quantity) FILTER (WHERE h.status = 'COMPLETED'), 0)"
            " FROM stock_buckets b LEFT JOIN holds h ON h.product_id = b.product_id AND h.bucket = b.bucket"
            " GROUP BY b.product_id, b.bucket"
            " HAVING b.held_units <> coalesce(sum(h.quantity) FILTER (WHERE h.status = 'PENDING'), 0)"
            " OR b.sold_units <> coalesce(sum(h.quantity) FILTER (WHERE h.status = 'COMPLETED'), 0)"
            " OR b.held_units + b.sold_units > b.total_units").fetchall()
        made = conn.execute(f"SELECT count(*) FROM holds WHERE {MADE_BY_THE_RUNS}").fetchone()[0]
    return (f"{made} holds, " if made else "") + (
        "counters = holds" if not wrong else f"COUNTERS WRONG: {wrong[:3]}")


def pgbench(server: PostgresServer, script: str, clients: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "script.sql"
        path.write_text(script)
        output = subprocess.run(
            [str(_postgres_bindir() / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
             "-T", str(seconds), "-f", str(path), "-l", "--log-prefix", str(Path(folder) / "log"),
             "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "storefront"],
            capture_output=True, text=True, check=True, cwd=folder).stdout
        latencies = sorted(int(line.split()[2]) for log in Path(folder).glob("log*")
                           for line in log.read_text().splitlines())
    tps = float(next(line for line in output.splitlines() if line.startswith("tps")).split()[2])
    done = int(next(line for line in output.splitlines() if line.startswith("number of transactions actually"))
               .split(":")[1].split("/")[0])
    return {"rps": tps, "transactions": done, "p99": latencies[int(len(latencies) * 0.99)] / 1000 if latencies else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["queue", "refusals"],
                        help="the waiting room's figures alone, or the HTTP refusals' alone")
    args = parser.parse_args()
    wrk_path = ensure_wrk()
    print(f"cores: {os.cpu_count()}  {args.seconds}s per run, {args.rounds} rounds, PostgreSQL fsync on", flush=True)
    ratios = []
    with PostgresServer(durable=True) as server, tempfile.NamedTemporaryFile("w", suffix=".py") as no_config:
        ids = prepare(server)
        one = PGBENCH_HOLD.format(choose_product=f"\\set product {ids['one']}")
        spread = PGBENCH_HOLD.format(choose_product=f"\\set product random({ids['first']}, {ids['last']})")
        refuse = PGBENCH_HOLD.format(choose_product=f"\\set product {ids['sold_out']}")
        stock = PGBENCH_STOCK.format(product=ids["sold_out"])
        shop, url = start_gunicorn(server, 2, 32)
        minimal, minimal_url = start_gunicorn(server, 2, 32, "bench.reference_apps:minimal", no_config.name)
        same, same_url = start_gunicorn(server, 2, 32, "bench.reference_apps:same_work", no_config.name)
        hold_one = HOLD_SCRIPT.replace("PRODUCT_ID", str(ids["one"]))
        hold_spread = (HOLD_SCRIPT.split("request = function()")[0]
                       + SPREAD_LUA.replace("FIRST", str(ids["first"])).replace("SPREAD", str(SPREAD)))
        refuse_http = HOLD_SCRIPT.replace("PRODUCT_ID", str(ids["sold_out"]))
        # The minimal app's threads connect on their first request (the shop's did in
        # start_gunicorn): not in a measured round.
        wrk(wrk_path, minimal_url, 64, 2, refuse_http)
        wrk(wrk_path, same_url, 64, 2, refuse_http)

        def database(label, script, clients, before=None):
            def measure():
                reset(server)
                if before is not None:
                    before()
                result = pgbench(server, script, clients, args.seconds)
                print(f"  {label:<52} {result['rps']:>9.0f}/s  p99 {result['p99']:>7.2f} ms  "
                      f"{result['transactions']} calls, {consistent(server)}", flush=True)
                return result
            return measure

        def http(label, script, target=url):
            def measure():
                reset(server)
                result = wrk(wrk_path, target, 64, args.seconds, script)
                answered = result["rps"] if result["non2xx"] == 0 else \
                    (result["rps"] * result["seconds"] + result["non2xx"]) / result["seconds"]
                result = {**result, "rps": answered}
                print(f"  {label:<52} {answered:>9.0f}/s  p99 {result['p99']:>7.2f} ms  {consistent(server)}",
                      flush=True)
                return result
            return measure

        def admit():
            readmit(server, ids["queued"])

        queue_comparisons = [
            ("database, 16 connections: holds on a queued product / without a queue", None,
             database("queued, 16 connections", PGBENCH_QUEUED_HOLD.format(product=ids["queued"]), 16, admit),
             database("no queue, 16 connections", PGBENCH_QUEUED_HOLD.format(product=ids["unqueued"]), 16, admit)),
        ]
        refusals = [
            ("HTTP, 64 connections: refusals / a minimal app's refusals", None,
             http("refusals of a sold-out product", refuse_http),
             http("a minimal app's refusals of it", refuse_http, minimal_url)),
            ("HTTP, 64 connections: refusals / the shop's function in a minimal app", 0.9,
             http("refusals of a sold-out product", refuse_http),
             http("the shop's function's refusals, minimal app", refuse_http, same_url)),
        ]
        comparisons = [] if args.only else [
            ("database, 16 connections: one product / spread over 64", 0.9,
             database("one product, 16 connections", one, 16), database("spread, 16 connections", spread, 16)),
            ("database, 64 connections: one product / spread over 64", 0.8,
             database("one product, 64 connections", one, 64), database("spread, 64 connections", spread, 64)),
            ("database: refusals of a sold-out product / its stock SELECT", 0.9,
             database("refusals, 16 connections", refuse, 16), database("stock SELECT, 16 connections", stock, 16)),
            ("HTTP, 64 connections: holds on one product / spread", 0.95,
             http("holds on one product", hold_one), http("holds spread over 64", hold_spread)),
            ("HTTP, 64 connections: refusals / stock check", 0.9,
             http("refusals of a sold-out product", refuse_http),
             http("stock check of it", None, f"{url}/api/inventory/check/{ids['sold_out']}")),
        ]
        if args.only == "refusals":
            queue_comparisons = []
        try:
            for title, target, measured, reference in (comparisons + ([] if args.only == "queue" else refusals)
                                                       + queue_comparisons):
                print(f"-- {title}", flush=True)
                pairs = []
                for number in range(args.rounds):
                    if number % 2 == 0:
                        pairs.append((measured(), reference()))
                    else:
                        base = reference()
                        pairs.append((measured(), base))
                ratios.append((title, target, pairs))
            ranking = []
            if args.only != "refusals":
                print(f"-- the ranking at the start: {RANKED:,} entries in one statement", flush=True)
                ranking = rank(server, ids["ranked"], args.rounds)
        finally:
            for process in (shop, minimal, same):
                process.terminate()  # gunicorn.conf.py gives the shop's workers 30 s to finish
            for process in (shop, minimal, same):
                try:
                    process.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    print(f"\nratios, median of {args.rounds} rounds:")
    for title, target, pairs in ratios:
        rate = statistics.median(mine["rps"] / base["rps"] for mine, base in pairs)
        p99 = statistics.median(mine["p99"] / base["p99"] for mine, base in pairs if base["p99"])
        goal = f"(target >= {target:.2f})" if target else "(context)       "
        print(f"{title:<64} {rate:5.2f}x {goal}   p99 {p99:5.2f}x   rounds: "
              + ", ".join(f"{mine['rps'] / base['rps']:.2f}" for mine, base in pairs))
    if not ranking:
        return 0
    seconds = statistics.median(mine for mine, _ in ranking)
    print(f"{'ranking ' + format(RANKED, ',') + ' entries (ms) / one UPDATE of each':<64} "
          f"{seconds * 1000:5.0f} ms, {statistics.median(mine / base for mine, base in ranking):4.2f}x   rounds: "
          + ", ".join(f"{mine * 1000:.0f}/{base * 1000:.0f} ms" for mine, base in ranking))
    return 0


if __name__ == "__main__":
    sys.exit(main())
