"""Profile the hot paths in-process (cProfile): N holds, N refusals of a sold-out product,
N stock checks, N /healthz.

    .venv/bin/python -m bench.profile_hot_path [--requests 2000] [--top 25]

Starts a throwaway PostgreSQL, runs each path through Flask's test client and
prints the functions that take the most own time, the microseconds per request of
each path (profiled), and before that its CPU microseconds per request unprofiled.
"""

import argparse
import cProfile
import io
import pstats
import time

from bench.holds import SHOP_ENV
from scripts.services import PostgresServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import flask_migrate

    from storefront import create_app
    from storefront.catalog.models import Product
    from storefront.extensions import db
    from storefront.inventory.stock import spread_total

    with PostgresServer() as server:
        app = create_app({"DATABASE_URL": server.url(), **SHOP_ENV, "HOLD_RATE_LIMIT": "1000000/minute"})
        with app.app_context():
            flask_migrate.upgrade()
            product = Product(sku="P", name="P", description="", price=2500, currency="usd")
            sold_out = Product(sku="S", name="S", description="", price=2500, currency="usd")
            db.session.add_all([product, sold_out])
            db.session.flush()
            spread_total(db.session.connection(), product.id, 10_000_000)
            spread_total(db.session.connection(), sold_out.id, 0)
            db.session.commit()
            product_id, sold_out_id = product.id, sold_out.id
        client = app.test_client()
        paths = {
            "hold": lambda n: client.post("/api/reservations", json={"productId": product_id,
                                                                     "userId": f"profile-visitor-{n}"}),
            "refusal": lambda n: client.post("/api/reservations", json={"productId": sold_out_id,
                                                                        "userId": f"profile-visitor-{n}"}),
            "stock check": lambda n: client.get(f"/api/inventory/check/{product_id}"),
            "healthz": lambda n: client.get("/healthz"),
        }
        for name, call in paths.items():
            for n in range(50):
                call(-n - 1)  # warm up: prepared statements, caches
            # First unprofiled: this process's CPU time per request (waiting on PostgreSQL excluded).
            cpu_started = time.process_time()
            for n in range(args.requests):
                call(args.requests + n)
            cpu = (time.process_time() - cpu_started) / args.requests * 1e6
            print(f"\n=== {name}: {cpu:.0f} us of CPU per request (unprofiled, test client included) ===")
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for n in range(args.requests):
                response = call(n)
            profiler.disable()
            elapsed = time.perf_counter() - started
            assert response.status_code in ((409,) if name == "refusal" else (200, 201)), response.get_data(as_text=True)
            print(f"\n=== {name}: {elapsed / args.requests * 1e6:.0f} us per request (profiled) ===")
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            print("\n".join(out.getvalue().splitlines()[6:6 + args.top + 3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
