"""A drop rehearsed end to end on this machine: the whole stack (scripts/stack.py: PostgreSQL behind
PgBouncer, Redis, Kafka, gunicorn hosts behind nginx, worker.py), localstripe as Stripe, and a crowd
played by Locust (bench/rehearsal_crowd.py) through nginx: people who open the page before the start,
join the line with its proof of work solved, look at their place every STOCK_POLL_SECONDS as the page
does, hold when admitted, then pay on localstripe (its webhook back through nginx, Kafka and RQ) and
mostly come back to the hold's page, or let the hold lapse; and scripts that join from a few
addresses with many visitor ids, look twice a second, and hold and pay the moment they can.

With ``--faults``, in the middle of the drop: a web host killed (started again 10 s later), PostgreSQL
stopped for 5 s, a worker killed (started again 10 s later).

It prints what a drop's owner asks afterwards, and asserts nothing (tests/test_rehearsal.py asserts
a small one's invariants): time from the start to sold out and to every unit paid; p50/p99 and the
statuses of each route; units sold against stock (oversold must be 0); every PaymentIntent that
succeeded on localstripe a sale or a refund; the scripts' share of units against their share of
arrivals; the rank correlation between arrival and place for those who joined before the start (0
is fair: the order is drawn); how long the admitted waited; what each fault cost. ``--json`` writes
the report, ``--picture`` a timeline of admissions, holds, payments and lapses a second.

    .venv/bin/python -m bench.rehearsal --units 500 --arrivals 20000
    .venv/bin/python -m bench.rehearsal --units 500 --arrivals 20000 --faults --picture docs/rehearsal.png

Rehearsal settings the shop runs with, so that the drop fits in minutes: holds last HOLD_TTL_SECONDS
(120, not 600), a pass QUEUE_PASS_SECONDS (120, the default), the sweep runs every 10 s, and the proof
of work is light (QUEUE_PROOF_OF_WORK 1000: what it costs a browser is bench/proof_of_work.py's; here
its round trips). The crowd stands for a load balancer in front of nginx (TRUSTED_PROXY_COUNT=2).
"""

import argparse
import bisect
import collections
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import requests
from psycopg.rows import namedtuple_row

from bench.holds import ensure_wrk, wrk
from scripts.services import REPO, Localstripe
from scripts.stack import Stack

FAULT_GRACE = 10.0  # seconds after a fault is over whose errors are still its own


def arrivals(count: int, lead: float, after: float, script_share: float, script_addresses: int,
             chance: random.Random) -> list[tuple[float, str, str]]:
    """Every arrival: seconds from the start (negative: before it), person or script, client address.
    People: 60 % spread over the ``lead`` before the start, the rest over the ``after`` past it; each
    from an address of their own. Scripts: over the last few seconds before the start and the first
    after it, from ``script_addresses`` addresses."""
    planned = []
    for n in range(count):
        if chance.random() < script_share:
            address = f"203.0.113.{1 + n % script_addresses}"
            planned.append((chance.uniform(-min(lead, 5.0), 2.0), "script", address))
        else:
            offset = chance.uniform(-lead, 0) if chance.random() < 0.6 else chance.uniform(0, after)
            planned.append((offset, "person", f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"))
    return sorted(planned)


class Faults(threading.Thread):
    """The faults, each at its moment after the start, with when each began and was over."""

    def __init__(self, stack: Stack, starts_at: float, at: list[float]):
        super().__init__(daemon=True)
        self.stack, self.starts_at, self.at = stack, starts_at, at
        self.windows: list[dict] = []

    def _wait_until(self, moment: float) -> None:
        time.sleep(max(0.0, self.starts_at + moment - time.time()))

    def _fault(self, what: str, break_it, mend_it, down: float) -> None:
        began = time.time()
        print(f"  fault: {what}", flush=True)
        break_it()
        time.sleep(down)
        mend_it()
        self.windows.append({"fault": what, "began": began - self.starts_at, "over": time.time() - self.starts_at})

    def run(self) -> None:
        host, database, worker = self.at
        self._wait_until(host)
        self._fault("a web host killed (SIGKILL), started again 10 s later",
                    lambda: self.stack.kill_host(0), lambda: self.stack.start_host(0), 10)
        self._wait_until(database)
        self._fault("PostgreSQL stopped for 5 s, then started again",
                    self.stack.postgres.stop_keeping_data, self.stack.postgres.start_again, 5)
        self._wait_until(worker)
        self._fault("a worker killed (SIGKILL), started again 10 s later",
                    lambda: self.stack.kill_worker(0), lambda: self.stack.start_worker(0), 10)


def localstripe_list(url: str, key: str, what: str) -> list[dict]:
    found, after = [], None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        page = requests.get(f"{url}/v1/{what}", params=params, headers={"Authorization": f"Bearer {key}"},
                            timeout=30).json()
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        after = page["data"][-1]["id"]


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()


def read_the_shop(dsn: str, product: int) -> dict:
    """The drop's holds, paid orders and places (rows with named fields), and its counters."""
    with psycopg.connect(dsn, row_factory=namedtuple_row) as conn:
        holds = conn.execute(
            "SELECT id::text, user_id, quantity, status, created_at, expires_at, updated_at, payment_intent_id,"
            " refund_id FROM holds WHERE product_id = %s", (product,)).fetchall()
        orders = conn.execute("SELECT id::text, paid_at FROM orders WHERE paid_at IS NOT NULL").fetchall()
        places = conn.execute(
            "SELECT user_id, joined_at, position, admitted_at, held_at FROM queue_entries WHERE product_id = %s",
            (product,)).fetchall()
        total, held, sold = conn.execute(
            "SELECT sum(total_units) AS total, sum(held_units) AS held, sum(sold_units) AS sold FROM stock_buckets"
            " WHERE product_id = %s",
            (product,)).fetchone()
    return {"holds": holds, "orders": orders, "places": places, "total": total, "held": held, "sold": sold}


def hold_status_by_intent(shop: dict) -> dict[str, str]:
    return {hold.payment_intent_id: hold.status for hold in shop["holds"] if hold.payment_intent_id}


def unsettled(shop: dict, intents: list[dict]) -> list[str]:
    """Intents that succeeded whose hold is neither sold nor refunded: money taken for nothing."""
    status_of = hold_status_by_intent(shop)
    return [intent["id"] for intent in intents if intent["status"] == "succeeded"
            and status_of.get(intent["id"]) not in ("COMPLETED", "REFUNDED")]


def wait_until_settled(dsn: str, product: int, stripe_url: str, key: str, seconds: float) -> float:
    """Until no hold is pending and every succeeded payment is a sale or a refund: how long it took."""
    began = time.time()
    while time.time() - began < seconds:
        shop = read_the_shop(dsn, product)
        pending = [hold for hold in shop["holds"] if hold.status == "PENDING"]
        if not pending and not unsettled(shop, localstripe_list(stripe_url, key, "payment_intents")):
            return time.time() - began
        time.sleep(2)
    return time.time() - began


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ranks(values: list) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranked = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranked[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranked


def spearman(xs: list, ys: list) -> float:
    if len(xs) < 3:
        return float("nan")
    return statistics.correlation(ranks(xs), ranks(ys))


def crowd_rate(records: list[dict]) -> dict:
    """The crowd's requests a second: over its whole run, and in its busiest second."""
    moments = [record["t"] for record in records if record["route"] not in ("lapse", "crowd error")]
    if not moments:
        return {"mean": 0.0, "busiest": 0}
    seconds = collections.Counter(int(moment) for moment in moments)
    return {"mean": len(moments) / max(1.0, max(moments) - min(moments)), "busiest": max(seconds.values())}


def report(plan: dict, records: list[dict], shop: dict, intents: list[dict], refunds: list[dict],
           windows: list[dict], settled_in: float) -> dict:
    start, units = plan["starts_at"], plan["units"]
    # Sold out: the first moment held and sold units together reached the stock.
    changes = []
    for hold in shop["holds"]:
        changes.append((epoch(hold.created_at), hold.quantity))
        ended = {"EXPIRED": hold.expires_at, "REFUNDED": hold.expires_at, "CANCELLED": hold.updated_at}.get(hold.status)
        if ended is not None:
            changes.append((epoch(ended), -hold.quantity))
    occupied, sold_out_at = 0, None
    for moment, change in sorted(changes):
        occupied += change
        if occupied >= units and sold_out_at is None:
            sold_out_at = moment - start
    sold_holds = [hold for hold in shop["holds"] if hold.status == "COMPLETED"]
    paid_at = {order.id: epoch(order.paid_at) for order in shop["orders"]}
    paid_moments = sorted(paid_at[hold.id] for hold in sold_holds if hold.id in paid_at)
    sold_units = sum(hold.quantity for hold in sold_holds)

    routes = {}
    for route in sorted({record["route"] for record in records} - {"lapse", "crowd error"}):
        mine = [record for record in records if record["route"] == route]
        statuses = collections.Counter(str(record["status"]) for record in mine)
        routes[route] = {"requests": len(mine), "p50_ms": percentile([r["ms"] for r in mine], 0.5),
                         "p99_ms": percentile([r["ms"] for r in mine], 0.99), "statuses": dict(statuses)}

    def in_a_fault(record) -> dict | None:
        """The last fault begun before the request was answered, if it is not long over."""
        moment = record["t"] + record["ms"] / 1000 - start
        begun = [w for w in windows if w["began"] <= moment <= w["over"] + FAULT_GRACE]
        return max(begun, key=lambda w: w["began"]) if begun else None

    failed = [record for record in records if record["route"] in routes
              and (record["status"] >= 500 or record["status"] == 0)]
    outside = [record for record in failed if in_a_fault(record) is None]
    faults = []
    for window in windows:
        mine = [record for record in failed if in_a_fault(record) is window]
        faults.append({**window, "failed_requests": len(mine),
                       "failed_by_route": dict(collections.Counter(r["route"] for r in mine)),
                       "failed_for_seconds": (max(r["t"] for r in mine) - min(r["t"] for r in mine)) if mine else 0.0})

    arrivals_by_kind = collections.Counter(kind for _, kind, _ in plan["arrivals"])
    script_units = sum(hold.quantity for hold in sold_holds if hold.user_id.startswith("script-"))
    before = [(epoch(place.joined_at), place.position) for place in shop["places"]
              if place.position is not None and epoch(place.joined_at) < start]
    admitted = [epoch(place.admitted_at) - start for place in shop["places"] if place.admitted_at is not None]
    lateness = [float(r["outcome"].split()[1]) for r in records if r["route"] == "product page"]
    status_of = hold_status_by_intent(shop)
    succeeded = [intent for intent in intents if intent["status"] == "succeeded"]
    refunded_intents = {refund.get("payment_intent") for refund in refunds}
    return {
        "units": units, "arrivals": len(plan["arrivals"]), "people": arrivals_by_kind["person"],
        "scripts": arrivals_by_kind["script"], "faults_injected": bool(windows),
        "sold_out_after_seconds": sold_out_at,
        "all_paid_after_seconds": (paid_moments[units - 1] - start) if len(paid_moments) >= units else None,
        "units_sold": sold_units, "oversold": max(0, sold_units - shop["total"]),
        "counters_agree": shop["sold"] == sold_units and shop["held"] == sum(
            hold.quantity for hold in shop["holds"] if hold.status == "PENDING"),
        "holds": dict(collections.Counter(hold.status for hold in shop["holds"])),
        "payments_succeeded": len(succeeded),
        "payments_sold": sum(1 for i in succeeded if status_of.get(i["id"]) == "COMPLETED"),
        "payments_refunded": sum(1 for i in succeeded if status_of.get(i["id"]) == "REFUNDED"
                                 and i["id"] in refunded_intents),
        "payments_unsettled": unsettled(shop, intents),
        "sold_without_payment": [hold.id for hold in sold_holds
                                 if hold.payment_intent_id not in {i["id"] for i in succeeded}],
        "settled_seconds_after_the_crowd": round(settled_in, 1),
        "script_share_of_arrivals": arrivals_by_kind["script"] / max(1, len(plan["arrivals"])),
        "script_share_of_units": script_units / max(1, sold_units),
        "arrival_place_rank_correlation": spearman([b[0] for b in before], [b[1] for b in before]),
        "joined_before_the_start": len(before),
        "admitted": len(admitted), "admitted_after_seconds_p50": percentile(admitted, 0.5),
        "admitted_after_seconds_p99": percentile(admitted, 0.99),
        "crowd_late_seconds_p99": percentile(lateness, 0.99),
        "routes": routes, "crowd_per_second": crowd_rate(records), "failed_requests": len(failed), "failed_outside_faults": len(outside),
        "failed_outside_faults_by_route": dict(collections.Counter(r["route"] for r in outside)),
        "faults": faults,
        "crowd_errors": [record["outcome"] for record in records if record["route"] == "crowd error"][:20],
    }


def print_report(figures: dict) -> None:
    def seconds(value):
        return "never" if value is None else f"{value:.1f} s"

    print(f"\n==> a drop of {figures['units']} units to {figures['arrivals']:,} arrivals "
          f"({figures['people']:,} people, {figures['scripts']:,} scripts)"
          f"{', with faults' if figures['faults_injected'] else ''}")
    print(f"  sold out {seconds(figures['sold_out_after_seconds'])} after the start; every unit paid "
          f"{seconds(figures['all_paid_after_seconds'])} after it")
    print(f"  units sold {figures['units_sold']} of {figures['units']}, oversold {figures['oversold']}, "
          f"counters agree with the holds: {figures['counters_agree']}; holds {figures['holds']}")
    print(f"  payments succeeded {figures['payments_succeeded']}: sold {figures['payments_sold']}, refunded "
          f"{figures['payments_refunded']}, unsettled {len(figures['payments_unsettled'])}; sold without a payment "
          f"{len(figures['sold_without_payment'])} (settled {figures['settled_seconds_after_the_crowd']} s "
          "after the crowd left)")
    print(f"  scripts: {figures['script_share_of_arrivals']:.1%} of arrivals, {figures['script_share_of_units']:.1%} "
          f"of units")
    print(f"  arrival against place, {figures['joined_before_the_start']:,} who joined before the start: rank "
          f"correlation {figures['arrival_place_rank_correlation']:+.3f} (0 is fair)")
    print(f"  admitted {figures['admitted']:,}: p50 {figures['admitted_after_seconds_p50']:.1f} s, p99 "
          f"{figures['admitted_after_seconds_p99']:.1f} s after the start; the crowd ran late by "
          f"{figures['crowd_late_seconds_p99']:.2f} s at p99")
    print(f"  {'route':<14}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for route, row in figures["routes"].items():
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(row["statuses"].items()))
        print(f"  {route:<14}{row['requests']:>10,}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}  {statuses}")
    rate = figures["crowd_per_second"]
    reference = ", ".join(f"{name} {value:,.0f}/s" for name, value in figures.get("reference_per_second", {}).items())
    print(f"  the crowd's requests: {rate['mean']:,.0f}/s on average, {rate['busiest']:,}/s in its busiest second"
          + (f" (the same stack, wrk through nginx: {reference})" if reference else ""))
    print(f"  failed requests (5xx, or no answer): {figures['failed_requests']}, outside the faults "
          f"{figures['failed_outside_faults']} {figures['failed_outside_faults_by_route'] or ''}")
    if figures["crowd_errors"]:
        print(f"  the crowd's own errors (a mistake in bench/rehearsal_crowd.py): {figures['crowd_errors'][:3]}")
    for fault in figures["faults"]:
        print(f"  fault at {fault['began']:.1f} s, over at {fault['over']:.1f} s: {fault['fault']}: "
              f"{fault['failed_requests']} failed {fault['failed_by_route'] or ''} over "
              f"{fault['failed_for_seconds']:.1f} s")


def draw_timeline(path: str, plan: dict, shop: dict, windows: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    start = plan["starts_at"]
    hold_ids = {hold.id for hold in shop["holds"]}
    series = {
        "admitted": [epoch(place.admitted_at) - start for place in shop["places"] if place.admitted_at is not None],
        "held": [epoch(hold.created_at) - start for hold in shop["holds"]],
        "paid": [epoch(order.paid_at) - start for order in shop["orders"] if order.id in hold_ids],
        "lapsed": [epoch(hold.expires_at) - start for hold in shop["holds"] if hold.status in ("EXPIRED", "REFUNDED")],
    }
    moments = [moment for values in series.values() for moment in values] or [0.0]
    low, high = int(min(min(moments), 0)) - 1, int(max(moments)) + 2
    edges = list(range(low, high + 1))
    figure, axes = pyplot.subplots(figsize=(9, 3.6), dpi=110)
    for label, values in series.items():
        counts = [0] * (len(edges) - 1)
        for value in values:
            index = bisect.bisect_right(edges, value) - 1
            if 0 <= index < len(counts):
                counts[index] += 1
        axes.step(edges[:-1], counts, where="post", label=label, linewidth=1.2)
    top = axes.get_ylim()[1]
    for n, window in enumerate(windows):
        axes.axvspan(window["began"], window["over"], color=("0.80", "0.88", "0.94")[n % 3], zorder=0)
        axes.text(window["began"] + 0.3, top * (0.97 - 0.07 * n), window["fault"].split(",")[0].split(" (")[0],
                  fontsize=7, va="top")
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("seconds from the start")
    axes.set_ylabel("a second")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def _stop_as_on_ctrl_c(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)  # `timeout`, a kill: the stack is stopped all the same
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--arrivals", type=int, default=20000)
    parser.add_argument("--lead", type=float, default=60.0, help="seconds before the start that people arrive over")
    parser.add_argument("--after", type=float, default=60.0, help="seconds after the start that people arrive over")
    parser.add_argument("--script-share", type=float, default=0.1)
    parser.add_argument("--script-addresses", type=int, default=5)
    parser.add_argument("--lanes", type=int, default=200, help="the crowd's connections to the shop (and 20 more to Stripe)")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold-seconds", type=int, default=120)
    parser.add_argument("--pass-seconds", type=int, default=120, help="QUEUE_PASS_SECONDS (the shop's default)")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--faults-at", default="4,14,24", help="seconds after the start: host, database, worker")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip measuring the stack's trivial route and page with wrk first")
    parser.add_argument("--seed", default="rehearsal")
    parser.add_argument("--max-seconds", type=int, default=900, help="the crowd's longest run")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--picture", help="draw the timeline here (PNG)")
    args = parser.parse_args(argv)

    chance = random.Random(args.seed)
    keys = {"STRIPE_SECRET_KEY": "sk_test_rehearsal", "STRIPE_PUBLISHABLE_KEY": "pk_test_rehearsal",
            "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(16)}"}
    work = Path(tempfile.mkdtemp(prefix="storefront-rehearsal-"))
    print(f"==> a rehearsal: {args.units} units, {args.arrivals:,} arrivals; logs in {work}", flush=True)
    with Localstripe() as stripe, Stack(
            hosts=args.hosts, workers=args.workers, seed=False, log_folder=str(work), env={
                **keys, "STRIPE_API_BASE": stripe.url, "DEMO_PAYMENTS": "0",
                "HOLD_TTL_SECONDS": str(args.hold_seconds), "QUEUE_PASS_SECONDS": str(args.pass_seconds),
                "SWEEP_INTERVAL_SECONDS": "10", "QUEUE_PROOF_OF_WORK": "1000",
                # The crowd stands for a load balancer in front of nginx: its X-Forwarded-For names each
                # shopper's address, and nginx adds its own hop.
                "TRUSTED_PROXY_COUNT": "2"}) as stack:
        requests.post(f"{stripe.url}/_config/webhooks/rehearsal", timeout=10, json={
            "url": f"{stack.url}/api/webhooks/stripe", "secret": keys["STRIPE_WEBHOOK_SECRET"],
            "events": ["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"],
        }).raise_for_status()
        stack.flask("product", "add", "--sku", "REHEARSAL", "--name", "The rehearsed drop", "--price", "25.00",
                    "--total", str(args.units), "--starts-at", utc(time.time() + 3600), "--queue")
        with psycopg.connect(stack.postgres.dsn()) as conn:
            product = conn.execute("SELECT id FROM products WHERE sku = 'REHEARSAL'").fetchone()[0]
        reference = {}
        if args.reference:  # what this stack serves here, measured in the same run: a trivial route and the page
            wrk_path = ensure_wrk()
            for name, path in (("/healthz", "/healthz"), ("product page", f"/products/{product}")):
                reference[name] = wrk(wrk_path, f"{stack.url}{path}", 64, 5)["rps"]
            print("==> the stack's reference, wrk through nginx, 64 connections: "
                  + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in reference.items()), flush=True)
        starts_at = int(time.time() + args.lead + 8)  # the crowd's first arrivals come before it
        moment = utc(starts_at)
        stack.flask("product", "update", "REHEARSAL", "--starts-at", moment)
        plan = {"product": product, "starts_at": starts_at, "units": args.units, "seed": args.seed,
                "arrivals": arrivals(args.arrivals, args.lead, args.after, args.script_share, args.script_addresses,
                                     chance),
                "proof_of_work": True, "poll_seconds": 5.0, "script_poll_seconds": 0.5, "pay_share": 0.85,
                "return_share": 0.7, "stripe_url": stripe.url, "stripe_secret_key": keys["STRIPE_SECRET_KEY"]}
        (work / "plan.json").write_text(json.dumps(plan))
        record = work / "requests.jsonl"
        print(f"==> the crowd through nginx ({stack.url}); the start at {moment}", flush=True)
        crowd = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "rehearsal_crowd.py"), "--headless",
             "--users", str(args.lanes + 20), "--spawn-rate", str(args.lanes + 20), "--host", stack.url, "--only-summary",
             "--run-time", f"{args.max_seconds}s", "--stop-timeout", "5", "--loglevel", "WARNING"],
            cwd=REPO, env={**os.environ, "REHEARSAL_PLAN": str(work / "plan.json"), "REHEARSAL_RECORD": str(record)},
            stdout=open(work / "locust.log", "wb"), stderr=subprocess.STDOUT)
        faults = Faults(stack, starts_at, [float(v) for v in args.faults_at.split(",")]) if args.faults else None
        if faults:
            faults.start()
        try:
            while crowd.poll() is None:
                time.sleep(5)
                lines = sum(1 for _ in open(record)) if record.exists() else 0
                print(f"  {time.time() - starts_at:+7.0f} s from the start: {lines:,} requests", flush=True)
                if lines == 0 and time.time() > starts_at + 15:
                    raise SystemExit(f"the crowd sent nothing: {(work / 'locust.log').read_text()[-3000:]}")
        finally:
            if crowd.poll() is None:
                crowd.kill()
        if faults:
            faults.join()
        print("==> the crowd has left; waiting for every hold and payment to settle", flush=True)
        settled_in = wait_until_settled(stack.postgres.dsn(), product, stripe.url, keys["STRIPE_SECRET_KEY"],
                                        args.hold_seconds + 90)
        shop = read_the_shop(stack.postgres.dsn(), product)
        intents = localstripe_list(stripe.url, keys["STRIPE_SECRET_KEY"], "payment_intents")
        refunds = localstripe_list(stripe.url, keys["STRIPE_SECRET_KEY"], "refunds")
    records = [json.loads(line) for line in open(record)]
    windows = faults.windows if faults else []
    figures = report(plan, records, shop, intents, refunds, windows, settled_in)
    figures["reference_per_second"] = reference
    print_report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    if args.picture:
        draw_timeline(args.picture, plan, shop, windows,
                      f"{args.units} units, {args.arrivals:,} arrivals" + (", faults shaded" if windows else ""))
        print(f"  timeline: {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
