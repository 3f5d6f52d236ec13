"""What the waiting room's door costs: an ALTCHA proof of work at the contract's difficulty.

The shop runs on its embedded defaults with QUEUE_PROOF_OF_WORK (50,000 unless given) and the
demo catalogue, whose drop is queued and open; Debian's Chromium (through Playwright) opens the
drop's page again and again, and the time from the widget starting its work to its "verified"
is what a shopper waits. Beside it, in the same run, the same kind of challenge solved by a
script in Python (hashlib, one core): what a bot pays per place, and so per thousand places.
The number to find is uniform below maxnumber, so a solve tries half of it on average.

    .venv/bin/python -m bench.proof_of_work            # --solves 20 --difficulty 50000
"""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time

from altcha import ChallengeOptionsV1, create_challenge_v1, solve_challenge_v1
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from tests.browsing import CHROMIUM_ARGS, chromium_path

# Heard before the page's own scripts: the widget's states, timed on the page's clock.
TIMING = """
window.__solves = [];
document.addEventListener("statechange", function (event) {
  var state = event.detail && event.detail.state;
  if (state === "verifying") window.__started = performance.now();
  if (state === "verified" && window.__started !== undefined) window.__solves.push(performance.now() - window.__started);
}, true);
"""


def serve(difficulty: int):
    """The shop on its embedded defaults in this process, the demo catalogue seeded: (url, the drop, stop)."""
    import flask_migrate

    from storefront import create_app
    from storefront.listings.seed import seed_demo_catalogue

    folder = tempfile.mkdtemp(prefix="storefront-pow-")
    app = create_app({"QUEUE_PROOF_OF_WORK": str(difficulty), "SECRET_KEY": secrets.token_urlsafe(32)},
                     instance_path=os.path.join(folder, "instance"))
    with app.app_context():
        flask_migrate.upgrade()
        seed_demo_catalogue()
        from storefront.catalog.models import Product
        from storefront.extensions import db

        drop = db.session.query(Product).filter_by(sku="RUNNER-SPRING").one().id
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", drop, server.shutdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--difficulty", type=int, default=50_000)
    args = parser.parse_args()
    url, drop, stop = serve(args.difficulty)
    print(f"cores: {os.cpu_count()}  maxnumber {args.difficulty:,}, {args.solves} solves each side", flush=True)
    browser_times = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context()
            context.add_init_script(TIMING)
            page = context.new_page()
            for number in range(args.solves):
                page.goto(f"{url}/products/{drop}")
                page.wait_for_function("() => window.__solves.length > 0", timeout=120_000)
                browser_times.append(page.evaluate("window.__solves[0]") / 1000)
                print(f"  Chromium solve {number + 1:>3}: {browser_times[-1] * 1000:7.0f} ms", flush=True)
            browser.close()
    finally:
        stop()
    script_times = []
    for number in range(args.solves):
        challenge = create_challenge_v1(ChallengeOptionsV1(max_number=args.difficulty, hmac_key="bench"))
        started = time.perf_counter()
        solved = solve_challenge_v1(challenge)
        script_times.append(time.perf_counter() - started)
        assert solved is not None
    print(f"\nChromium (the widget's worker): median {statistics.median(browser_times) * 1000:.0f} ms, "
          f"mean {statistics.mean(browser_times) * 1000:.0f} ms, slowest {max(browser_times) * 1000:.0f} ms")
    per_place = statistics.mean(script_times)
    print(f"a script (Python hashlib, one core): median {statistics.median(script_times) * 1000:.0f} ms, "
          f"mean {per_place * 1000:.0f} ms a place")
    print(f"a thousand places: {per_place * 1000:.0f} CPU-seconds of a script's solving, and "
          f"{1000 // 4} client addresses at QUEUE_ENTRIES_PER_ADDRESS=4")
    print(f"the shopper's wait / a script's solve: {statistics.median(browser_times) / statistics.median(script_times):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
