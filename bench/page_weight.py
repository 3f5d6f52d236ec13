"""Page weight: what a shopper's browser fetches for the product page.

Serves the store with gunicorn on its embedded defaults (SQLite, seeded, in a
temp folder), opens a product page in Debian's Chromium twice (cold, then a
reload with the cache warm), and prints bytes of HTML, CSS, our own JS and the
vendored JS (raw and gzipped), and requests per page load.

    .venv/bin/python -m bench.page_weight
"""

import gzip
import os
import secrets
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from playwright.sync_api import sync_playwright

from scripts.services import REPO, free_port, wait_for_port
from tests.test_browser import CHROMIUM_ARGS, chromium_path


def kind_of(url: str, resource_type: str) -> str:
    if "/static/vendor/" in url:
        return "vendored JS (htmx, FingerprintJS)"
    if "/static/js/" in url:
        return "our JS"
    if resource_type == "stylesheet":
        return "CSS"
    if resource_type == "document":
        return "HTML (page)"
    if resource_type in ("xhr", "fetch"):
        return "HTML (htmx fragments)"
    if resource_type == "image":
        return "images"
    return resource_type


def load(browser, url: str, context=None):
    context = context or browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    seen = []

    def record(response):
        request = response.request
        body = response.body() if response.status < 300 else b""
        seen.append((kind_of(request.url, request.resource_type), request.url, body, response.from_service_worker))

    page.on("response", record)
    page.goto(url)
    page.wait_for_selector("html[data-visitor-id]", state="attached")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # the access log is written as each answer goes out
    page.close()
    return context, seen


def report(title: str, seen) -> None:
    totals = defaultdict(lambda: [0, 0, 0])
    for kind, _, body, _ in seen:
        totals[kind][0] += 1
        totals[kind][1] += len(body)
        totals[kind][2] += len(gzip.compress(body)) if body else 0
    print(f"\n{title}: {len(seen)} requests")
    for kind, (count, raw, zipped) in sorted(totals.items()):
        print(f"  {kind:<34} {count:>2} req   {raw:>7,} B   {zipped:>7,} B gzipped")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="storefront-weight-") as folder:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{Path(folder) / 'store.sqlite3'}",
               "SECRET_KEY": secrets.token_urlsafe(32)}
        flask = [sys.executable, "-m", "flask", "--app", "storefront"]
        subprocess.run([*flask, "db", "upgrade"], env=env, cwd=REPO, check=True, capture_output=True)
        subprocess.run([*flask, "seed"], env=env, cwd=REPO, check=True, capture_output=True)
        port = free_port()
        access_log = Path(folder) / "access.log"
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "-b", f"127.0.0.1:{port}",
                                   "--log-level", "warning", "--access-logfile", str(access_log)], env=env, cwd=REPO)

        def server_hits() -> list[str]:
            return access_log.read_text().splitlines() if access_log.exists() else []

        try:
            wait_for_port(port, 30, "gunicorn", server)
            url = f"http://127.0.0.1:{port}/products/2"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                context, cold = load(browser, url)
                report(f"product page, cold cache ({url})", cold)
                hits_cold = len(server_hits())
                print(f"  requests that reached the server: {hits_cold}")
                load(browser, url, context)
                warm_hits = server_hits()[hits_cold:]
                print(f"\nproduct page again, warm cache: {len(warm_hits)} requests reached the server")
                for line in warm_hits:
                    print("  " + line.split('"')[1])
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
