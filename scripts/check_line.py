#!/usr/bin/env python3
"""Check a drop's line, or its draw, from the command line, trusting neither the shop nor its page.

    python scripts/check_line.py https://shop.example/ 5 [--entry ENTRY_ID]
    python scripts/check_line.py https://shop.example/ 7 --draw [--entry ENTRY_ID]

Fetches what the shop publishes (``GET /api/queue/<id>``: the seed's SHA-256, and from the start
the seed; ``GET /api/queue/<id>/entries.csv``: every place) and recomputes the order: the seed
hashes to what was published, the places that joined before the start are in the order of
HMAC-SHA256(seed, entry id), lowest first, and the later ones follow. With ``--draw``, a draw's
(``GET /api/draws/<id>`` and ``/results.csv``): every entry ranked by the same HMAC, every outcome
one of won, lost, forfeited, and no more winners than the draw had units. Exit status 0 when the
order holds, 1 when it does not, 2 when it cannot be checked yet. Standard library only.
"""

import argparse
import csv
import hashlib
import hmac
import io
import json
import sys
import urllib.request


def fetch(url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=30) as answer:
        return answer.read().decode()


def check(standing: dict, listing: str, entry: str | None = None) -> tuple[bool, list[str]]:
    """(the order holds, what was checked, a line each)."""
    said = []
    seed = bytes.fromhex(standing["seed"])
    ok = hashlib.sha256(seed).hexdigest() == standing["seedHash"]
    said.append(f"{'ok' if ok else 'WRONG'}: the seed's SHA-256 is the published {standing['seedHash']}")
    rows = list(csv.DictReader(io.StringIO(listing)))
    before = [row for row in rows if row["joined"] == "before"]
    after = [row for row in rows if row["joined"] != "before"]
    ranked = sorted(before, key=lambda row: hmac.new(seed, row["entry_id"].encode(), hashlib.sha256).digest())
    in_order = [int(row["position"]) for row in ranked] == list(range(1, len(before) + 1))
    said.append(f"{'ok' if in_order else 'WRONG'}: {len(before)} places joined before the start, ranked by the seed")
    behind = [int(row["position"]) for row in after] == list(range(len(before) + 1, len(rows) + 1))
    said.append(f"{'ok' if behind else 'WRONG'}: {len(after)} later places follow them")
    unique = len({row["entry_id"] for row in rows}) == len(rows)
    said.append(f"{'ok' if unique else 'WRONG'}: no entry id twice")
    if entry:
        mine = next((row for row in rows if row["entry_id"] == entry), None)
        said.append(f"your entry {entry}: place {mine['position']} of {len(rows)}" if mine
                    else f"your entry {entry} is not in the list")
    return ok and in_order and behind and unique, said


def check_draw(standing: dict, results: str, entry: str | None = None) -> tuple[bool, list[str]]:
    """A draw's results: (the ranking holds, what was checked, a line each)."""
    said = []
    seed = bytes.fromhex(standing["seed"])
    ok = hashlib.sha256(seed).hexdigest() == standing["seedHash"]
    said.append(f"{'ok' if ok else 'WRONG'}: the seed's SHA-256 is the published {standing['seedHash']}")
    rows = list(csv.DictReader(io.StringIO(results)))
    ranked = sorted(rows, key=lambda row: hmac.new(seed, row["entry_id"].encode(), hashlib.sha256).digest())
    in_order = [int(row["rank"]) for row in ranked] == list(range(1, len(rows) + 1))
    said.append(f"{'ok' if in_order else 'WRONG'}: {len(rows)} entries ranked by the seed")
    outcomes = [row["outcome"] for row in rows]
    known = all(outcome in ("won", "lost", "forfeited") for outcome in outcomes)
    said.append(f"{'ok' if known else 'WRONG'}: {outcomes.count('won')} won, {outcomes.count('forfeited')} forfeited, "
                f"{outcomes.count('lost')} lost")
    enough = outcomes.count("won") <= standing["units"]
    said.append(f"{'ok' if enough else 'WRONG'}: no more winners than the draw's {standing['units']} units")
    unique = len({row["entry_id"] for row in rows}) == len(rows)
    said.append(f"{'ok' if unique else 'WRONG'}: no entry id twice")
    if entry:
        mine = next((row for row in rows if row["entry_id"] == entry), None)
        said.append(f"your entry {entry}: rank {mine['rank']} of {len(rows)}, {mine['outcome']}" if mine
                    else f"your entry {entry} is not in the results (not authorised by the close)")
    return ok and in_order and known and enough and unique, said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shop", help="the shop's address, like https://shop.example/")
    parser.add_argument("product", type=int, help="the queued (or drawn) product's id")
    parser.add_argument("--entry", help="your entry id, to say where it stands")
    parser.add_argument("--draw", action="store_true", help="the product is sold by a draw: check its results")
    args = parser.parse_args()
    base = args.shop.rstrip("/")
    if args.draw:
        standing = json.loads(fetch(f"{base}/api/draws/{args.product}"))
        if not standing.get("seed"):
            print("the seed is revealed at the draw: nothing to check yet")
            return 2
        holds, said = check_draw(standing, fetch(f"{base}/api/draws/{args.product}/results.csv"), args.entry)
        print("\n".join(said))
        print("the draw holds" if holds else "THE DRAW DOES NOT HOLD")
        return 0 if holds else 1
    standing = json.loads(fetch(f"{base}/api/queue/{args.product}"))
    if not standing.get("seed"):
        print("the seed is revealed at the start: nothing to check yet")
        return 2
    holds, said = check(standing, fetch(f"{base}/api/queue/{args.product}/entries.csv"), args.entry)
    print("\n".join(said))
    print("the order holds" if holds else "THE ORDER DOES NOT HOLD")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
