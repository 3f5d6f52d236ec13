"""What MAX_HELD_UNITS_PER_ADDRESS costs a hold in the database, beside the hold without it.

The shop's hold function (``storefront_place_hold``, version 6: the address's advisory lock and
the sum of its live units, and one more index entry per hold) against version 5 (the same hold
without the address limit), installed beside it under another name from its own file. pgbench
drives both the way bench/drop.py does: new holds spread over 64 products, each from one of
65,536 client addresses drawn at random (a crowd's: an address holds a hold or two, as the
limit keeps it; with one address per connection, each address ran up thousands of live holds
and every hold summed them all, which no shop under its limit does), 16 and 64 connections,
fsync on, from a shop with 200,000 finished holds; rounds back to back, every other one in the
opposite order.

    .venv/bin/python -m bench.address_limit     # --seconds 6 --rounds 5
"""

import argparse
import statistics
import textwrap

import psycopg

from bench.drop import consistent, pgbench, prepare, reset
from scripts.services import PostgresServer
from storefront.inventory.sql import sql

HOLD = textwrap.dedent("""\
    \\set n random(1, 2000000000)
    \\set product random({first}, {last})
    SELECT outcome FROM {function}(gen_random_uuid(), :product,
        ('pgbench-' || :client_id || '-' || :n)::varchar, ''::varchar,
        ('198.18.' || (:n % 256) || '.' || (:n / 256 % 256))::varchar, 1, 600, 1000000{address_limit});
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.seconds}s per run, {args.rounds} rounds, PostgreSQL fsync on", flush=True)
    with PostgresServer(durable=True) as server:
        ids = prepare(server)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            # Both versions under names of their own: the shop's current function (v8) takes more arguments.
            for version in (5, 6):
                conn.execute(sql(f"place_hold_v{version}.sql").replace(
                    "FUNCTION storefront_place_hold(", f"FUNCTION bench_place_hold_v{version}("))
        scripts = {
            "with the address limit (v6)": HOLD.format(first=ids["first"], last=ids["last"],
                                                       function="bench_place_hold_v6", address_limit=", 1000000"),
            "without it (v5)": HOLD.format(first=ids["first"], last=ids["last"], function="bench_place_hold_v5",
                                           address_limit=""),
        }
        summary = []
        for clients in (16, 64):
            print(f"-- {clients} connections", flush=True)
            ratios, rates = [], {label: [] for label in scripts}
            for round_number in range(args.rounds):
                order = list(scripts) if round_number % 2 == 0 else list(reversed(scripts))
                measured = {}
                for label in order:
                    reset(server)
                    result = pgbench(server, scripts[label], clients, args.seconds)
                    measured[label] = result["rps"]
                    rates[label].append(result["rps"])
                    print(f"  {label:<32} {result['rps']:>7.0f}/s  p99 {result['p99']:>7.2f} ms  "
                          f"{result['transactions']} calls, {consistent(server)}", flush=True)
                ratios.append(measured["with the address limit (v6)"] / measured["without it (v5)"])
            summary.append((clients, statistics.median(ratios), ratios, rates))
        print("\nratios, with / without, median of the rounds:")
        for clients, median, ratios, rates in summary:
            sides = ", ".join(f"{label} {statistics.median(values):.0f}/s" for label, values in rates.items())
            print(f"{clients} connections: {median:.2f}x   rounds: {', '.join(f'{r:.2f}' for r in ratios)}   ({sides})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
