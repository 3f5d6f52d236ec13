"""A crowd of open pages polling one product, through the project's nginx and straight to gunicorn.

Every open product page asks for its stock every STOCK_POLL_SECONDS (5 s): K open pages are K/5
polls a second. wrk stands in for the pages (the htmx fragment they ask for, kept-alive
connections), at rising numbers of connections, on each side in turn in the same run:

- through nginx (deploy/nginx/, the micro-cache of the shared answers) in front of the shop;
- straight to the same gunicorn (2 workers x 8 threads).

Per step: polls answered a second, p99, and the requests that reached the shop a second (its own
/metrics, summed over its workers). The open pages a side holds: the largest rate whose p99 stays
under 200 ms, times STOCK_POLL_SECONDS. Then, on the nginx side: a drop's line polled the same way
(the queue's shared answer), and holds placed during a poll storm, each answered exactly and seen by
a poll through nginx two seconds later (the hold path never goes through the cache).

Targets (ratios in the same run): requests reaching the shop <= 2 a second per product per cache
(the JSON and the fragment are two answers), whatever the crowd; open pages held through the
cache >= 10x those held without it.

    .venv/bin/python -m bench.crowd                 # --seconds 6 --steps 16,64,256
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

import psycopg
import requests

from bench.holds import SHOP_ENV, add_product, ensure_wrk, wrk
from scripts.services import REPO, NginxServer, PostgresServer, free_port, wait_for_port

POLL_SECONDS = 5
P99_LIMIT_MS = 200
FRAGMENT_POLL = 'wrk.headers["HX-Request"] = "true"\n'


def metric(base_url: str, route: str) -> float:
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return sum(float(value) for value in re.findall(
        rf'storefront_http_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*\}} ([0-9.e+]+)', text))


def start_shop(server: PostgresServer) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV, "HOLD_RATE_LIMIT": "100000000/minute"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "8", "--worker-class", "gthread", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, "gunicorn", process)
    for _ in range(40):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    return process, port


def prepare(server: PostgresServer) -> dict:
    env = {**os.environ, "DATABASE_URL": server.url(), **SHOP_ENV}
    subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", "db", "upgrade"], cwd=REPO, env=env,
                   check=True, capture_output=True)
    with psycopg.connect(server.dsn(),
                         autocommit=True) as conn:
        product = add_product(conn, "CROWD", 1_000_000)
        queued = add_product(conn, "CROWD-LINE", 1_000)
        conn.execute("UPDATE products SET queued = true, starts_at = now() + interval '5 minutes' WHERE id = %s",
                     (queued,))
        conn.execute("VACUUM ANALYZE")
    return {"product": product, "queued": queued}


def side(wrk_path: str, label: str, base_url: str, shop_url: str, path: str, route: str, steps, seconds) -> list:
    rows = []
    for connections in steps:
        before, started = metric(shop_url, route), time.monotonic()
        result = wrk(wrk_path, f"{base_url}{path}", connections, seconds, FRAGMENT_POLL)
        reached = (metric(shop_url, route) - before) / (time.monotonic() - started)
        rows.append({**result, "connections": connections, "reached": reached})
        print(f"  {label:<14} {connections:>4} connections {result['rps']:>9.0f} polls/s  p99 {result['p99']:>8.2f} ms"
              f"  reached the shop {reached:>8.1f}/s  non-2xx {result['non2xx']}", flush=True)
    return rows


def pages_held(rows) -> tuple[float, int]:
    """The most polls a second with p99 under the limit, and the open pages that is."""
    fine = [row["rps"] for row in rows if row["p99"] < P99_LIMIT_MS and row["non2xx"] == 0]
    rate = max(fine) if fine else 0.0
    return rate, int(rate * POLL_SECONDS)


def holds_during_a_storm(wrk_path: str, nginx_url: str, shop_url: str, product: int, seconds: int) -> list[str]:
    """Holds placed through nginx while wrk polls it: each answered 201, and a poll through nginx two
    seconds later (the cache's second, and the refresh's request) says exactly the stock it left."""
    problems = []
    storm = threading.Thread(target=wrk, args=(wrk_path, f"{nginx_url}/api/inventory/check/{product}", 64, seconds,
                                               FRAGMENT_POLL))
    storm.start()
    time.sleep(1)
    for n in range(5):
        before = requests.get(f"{shop_url}/api/inventory/check/{product}", timeout=10).json()["available"]
        hold = requests.post(f"{nginx_url}/api/reservations", timeout=10,
                             json={"productId": product, "userId": f"crowd-buyer-{n:04d}-{time.time_ns()}"})
        if hold.status_code != 201 or "X-Cache-Status" in hold.headers:
            problems.append(f"hold {n}: {hold.status_code} {hold.headers.get('X-Cache-Status')}")
        time.sleep(2)
        seen = requests.get(f"{nginx_url}/api/inventory/check/{product}", timeout=10).json()["available"]
        exact = requests.get(f"{shop_url}/api/inventory/check/{product}", timeout=10).json()["available"]
        if seen != exact or exact != before - 1:
            problems.append(f"hold {n}: before {before}, through nginx {seen}, the shop {exact}")
    storm.join()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--steps", default="16,64,256")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]
    wrk_path = ensure_wrk()
    print(f"cores: {os.cpu_count()}  {args.seconds}s a step, connections {steps}; pages poll every {POLL_SECONDS}s",
          flush=True)
    with PostgresServer(durable=True) as server:
        ids = prepare(server)
        shop, port = start_shop(server)
        shop_url = f"http://127.0.0.1:{port}"
        try:
            with NginxServer(f"127.0.0.1:{port}") as nginx:
                stock_path = f"/api/inventory/check/{ids['product']}"
                stock_route = "/api/inventory/check/<product_id:product_id>"
                print("-- the stock check, polled by a crowd", flush=True)
                cached = side(wrk_path, "through nginx", nginx.url, shop_url, stock_path, stock_route, steps,
                              args.seconds)
                direct = side(wrk_path, "straight", shop_url, shop_url, stock_path, stock_route, steps, args.seconds)
                print("-- a drop's line, polled by a crowd through nginx", flush=True)
                line = side(wrk_path, "through nginx", nginx.url, shop_url, f"/api/queue/{ids['queued']}",
                            "/api/queue/<product_id:product_id>", steps[-1:], args.seconds)
                print("-- holds during a poll storm through nginx", flush=True)
                problems = holds_during_a_storm(wrk_path, nginx.url, shop_url, ids["product"], 8)
        finally:
            shop.terminate()
            shop.wait(timeout=45)

    rate_cached, pages_cached = pages_held(cached)
    rate_direct, pages_direct = pages_held(direct)
    most_reached = max(row["reached"] for row in cached + line)
    print(f"\nopen pages held (p99 < {P99_LIMIT_MS} ms, a poll every {POLL_SECONDS} s):")
    print(f"  through nginx  {pages_cached:>9,} ({rate_cached:,.0f} polls/s)")
    print(f"  straight       {pages_direct:>9,} ({rate_direct:,.0f} polls/s)")
    ratio = pages_cached / pages_direct if pages_direct else float("inf")
    print(f"  ratio          {ratio:9.1f}x (target >= 10x; bounded here by wrk and nginx sharing 2 cores)")
    print(f"requests reaching the shop through nginx: at most {most_reached:.1f}/s per product (target <= 2)")
    print("holds during the storm: " + ("each exact, seen by the next poll" if not problems else "; ".join(problems)))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
