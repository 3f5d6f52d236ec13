"""Profile one gunicorn worker with py-spy while wrk sends it holds (or another path).

    .venv/bin/python -m bench.profile_under_load [--path holds|stock|healthz] [--seconds 10] [--top 25]

The shop runs under its production gunicorn.conf.py with one worker (so py-spy samples
the process that serves every request) and 4 threads, on a throwaway PostgreSQL with
fsync on. Prints the functions where the worker's threads spend their samples (own
time, idle waits left out), and the share of samples under a few landmarks.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

from bench.holds import HOLD_SCRIPT, ensure_wrk, prepare_database, start_gunicorn, wrk
from scripts.services import PostgresServer

IDLE = ("select (selectors.py", "poll (selectors.py", "wait (threading.py", "accept (socket.py",
        "_worker (concurrent/futures/thread.py", "get (queue.py", "sleep (gunicorn")
LANDMARKS = ("storefront_place_hold", "wait_c", "create_reservation", "RequestEnvelope.__call__",
             "full_dispatch_request", "render_template", "observe_request", "dumps")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=("holds", "stock", "healthz"), default="holds")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    wrk_path = ensure_wrk()
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        products = prepare_database(server)
        shop, url = start_gunicorn(server, 1, 4)
        try:
            worker_pid = int(subprocess.run(["pgrep", "-P", str(shop.pid)], capture_output=True, text=True,
                                            check=True).stdout.split()[0])
            raw = os.path.join(folder, "samples.txt")
            spy = subprocess.Popen([py_spy, "record", "--pid", str(worker_pid), "--format", "raw", "--output", raw,
                                    "--duration", str(args.seconds), "--rate", "250", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            script = HOLD_SCRIPT.replace("PRODUCT_ID", str(products["empty"])) if args.path == "holds" else None
            target = {"holds": url, "stock": f"{url}/api/inventory/check/{products['live']}",
                      "healthz": f"{url}/healthz"}[args.path]
            result = wrk(wrk_path, target, 16, args.seconds - 2, script)
            spy.wait(timeout=args.seconds + 30)
            print(f"{args.path}: {result['rps']:.0f}/s with one worker x 4 threads while sampled")
            report(raw, args.top)
        finally:
            shop.terminate()
            shop.wait(timeout=20)
    return 0


def report(raw_path: str, top: int) -> None:
    own, under, busy = collections.Counter(), collections.Counter(), 0
    with open(raw_path) as samples:
        for line in samples:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            if not frames or any(frames[-1].startswith(idle) for idle in IDLE):
                continue
            busy += int(count)
            own[frames[-1]] += int(count)
            for landmark in LANDMARKS:
                if any(landmark in frame for frame in frames):
                    under[landmark] += int(count)
    print(f"{busy} busy samples; own time:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / busy:5.1f}%  {frame}")
    print("under:")
    for landmark in LANDMARKS:
        print(f"  {100 * under[landmark] / max(busy, 1):5.1f}%  {landmark}")


if __name__ == "__main__":
    raise SystemExit(main())
