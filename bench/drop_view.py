"""The owner's live view of a drop, timed with a million finished holds in the table.

Seeds PostgreSQL (fsync on) with a product in three options and 1,000,000 finished holds on
them from before the drop (completed, expired, cancelled), then 3,000 holds placed since its
start; renders ``/admin/drops/<id>`` in-process through Flask's test client, and prints the
time per page beside the same page before the million holds were added (the reference,
measured in the same run).

Then what the view's index (``ix_holds_product_created``, one more B-tree entry per hold)
costs the shop's hot path: the hold function driven by pgbench (16 connections, over the three
options) with it, with none, and with a BRIN index on the holds' time instead (no entry per
hold, a summary per range of pages), in an order turned round every round.

    .venv/bin/python -m bench.drop_view            # --renders 20 --rounds 3 --seconds 6
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from base64 import b64encode

import psycopg

from bench.holds import SHOP_ENV, add_product, recount
from scripts.services import PostgresServer

PASSWORD = "bench-drop-view-password"


def seed_holds(conn, product_ids, count: int, *, since: str, label: str) -> None:
    """``count`` holds over the options and their 64 buckets each, a third each completed, expired, cancelled."""
    conn.execute(
        "INSERT INTO holds (id, product_id, bucket, user_id, quantity, amount, currency, status, expires_at,"
        " created_at, updated_at)"
        " SELECT gen_random_uuid(), (%(ids)s::integer[])[1 + n %% 3], n %% 64, %(label)s || n, 1, 2500, 'usd',"
        " (ARRAY['COMPLETED', 'EXPIRED', 'CANCELLED'])[1 + (n / 3) %% 3],"
        " now() - %(since)s::interval + (n %% 600) * interval '1 second',"
        " now() - %(since)s::interval + (n %% 600) * interval '1 second',"
        " now() - %(since)s::interval + (n %% 600) * interval '2 seconds'"
        " FROM generate_series(1, %(count)s) AS n",
        {"ids": list(product_ids), "count": count, "since": since, "label": label})


def time_renders(client, path: str, renders: int) -> list[float]:
    headers = {"Authorization": "Basic " + b64encode(f"admin:{PASSWORD}".encode()).decode()}
    assert client.get(path, headers=headers).status_code == 200  # warm: templates compiled, plans cached
    timings = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the index's cost (default 3)")
    parser.add_argument("--seconds", type=int, default=6, help="length of each pgbench run (default 6)")
    args = parser.parse_args()
    from storefront import create_app

    with PostgresServer(durable=True) as server:
        env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV}
        subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        dsn = server.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            parent = add_product(conn, "DROP", 0)
            options = []
            for label in ("S", "M", "L"):
                option = add_product(conn, f"DROP-{label}", 400_000)
                conn.execute("UPDATE products SET option_of = %s, option_label = %s, starts_at = now() - interval"
                             " '30 minutes' WHERE id = %s", (parent, label, option))
                options.append(option)
            conn.execute("UPDATE products SET starts_at = now() - interval '30 minutes' WHERE id = %s", (parent,))
            seed_holds(conn, options, 3_000, since="25 minutes", label="drop-")
            recount(conn)
            conn.execute("VACUUM ANALYZE")
        app = create_app({"DATABASE_URL": server.url(), **SHOP_ENV, "ADMIN_PASSWORD": PASSWORD})
        client = app.test_client()
        path = f"/admin/drops/{parent}"
        print(f"the drop: 3 options, 3,000 holds since its start; rendering {path} {args.renders} times", flush=True)
        reference = time_renders(client, path, args.renders)
        print("seeding 1,000,000 finished holds from before the drop...", flush=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed_holds(conn, options, 1_000_000, since="3 days", label="done-")
            recount(conn)
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        loaded = time_renders(client, path, args.renders)
        for label, timings in (("without the million", reference), ("with 1,000,000 finished holds", loaded)):
            print(f"  {label:<32} median {statistics.median(timings):7.1f} ms   max {max(timings):7.1f} ms")
        print(f"ratio, with / without: {statistics.median(loaded) / statistics.median(reference):.2f}x", flush=True)
        index_cost(server, options, args.rounds, args.seconds)
    return 0


INDEXES = {  # the view's index as the shop makes it, and the BRIN it could have been
    "btree": "CREATE INDEX ix_holds_product_created ON holds (product_id, created_at)",
    "brin": "CREATE INDEX ix_holds_created ON holds USING brin (created_at) WITH (autosummarize = on)",
}


def index_cost(server, options: list[int], rounds: int, seconds: int) -> None:
    """Holds per second with each index against with none, in an order turned round every round."""
    from bench.drop import PGBENCH_HOLD, pgbench

    script = PGBENCH_HOLD.format(choose_product=f"\\set product random({min(options)}, {max(options)})")
    dsn = server.dsn()
    print(f"the hold function, 16 connections, with the view's index (a B-tree on product_id, created_at),"
          f" with a BRIN on created_at instead, and with neither ({rounds} rounds):", flush=True)
    ratios = {"btree": [], "brin": []}
    for round_number in range(rounds):
        figures = {}
        arms = ("none", "btree", "brin")
        for arm in (arms if round_number % 2 == 0 else arms[::-1]):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP INDEX IF EXISTS ix_holds_created")
                conn.execute("DROP INDEX IF EXISTS ix_holds_product_created")
                if arm != "none":
                    conn.execute(INDEXES[arm])
                conn.execute("CHECKPOINT")
            result = pgbench(server, script, 16, seconds)
            figures[arm] = result["rps"]
            print(f"  {arm:<6} {result['rps']:8.0f} holds/s  p99 {result['p99']:6.2f} ms", flush=True)
        for arm in ratios:
            ratios[arm].append(figures[arm] / figures["none"])
    for arm, values in ratios.items():
        print(f"ratio, holds with the {arm} index / with neither: {statistics.median(values):.2f}x  rounds: "
              + ", ".join(f"{ratio:.2f}" for ratio in values))


if __name__ == "__main__":
    sys.exit(main())
