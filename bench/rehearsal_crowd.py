"""The crowd of a rehearsed drop (bench/rehearsal.py), as a Locust file: run by the rehearsal, not alone.

The rehearsal writes a plan (REHEARSAL_PLAN: a JSON file): the product, its start, and every arrival
(when, person or script, from which address). Each arrival is a shopper played as the page plays it,
one request at a time: open the product page, solve the line's proof of work and join, look at the
place as the page does (the line's shared answer every few seconds, the place itself when the line nears
it; a script: its place twice a second) until it is admitted or closed, hold at once,
then pay on the Stripe-compatible server (localstripe) and, most of the time, come back to the hold's
page as Stripe's redirect does; some people let the hold lapse instead. The webhook reaches the shop
from localstripe through nginx, as Stripe's does.

Locust's users are lanes, not shoppers: thousands of shoppers wait between requests at once, so each
shopper's next request is an event in a time-ordered heap, and the lanes (each with its own keep-alive
connection) take whichever is due: the shop's lanes its requests, twenty more the card confirmations,
which a browser sends Stripe whatever the shop's queue. Every request is written to REHEARSAL_RECORD (one JSON
line: when, route, status, milliseconds, shopper, and what it meant); the rehearsal reads that file.
"""

import base64
import heapq
import itertools
import json
import os
import random
import re
import time
import uuid
from http.cookiejar import CookieJar

import gevent
from altcha import solve_challenge_v1
from locust import FastHttpUser, events, task

PLAN = json.loads(open(os.environ["REHEARSAL_PLAN"]).read())
PRODUCT = PLAN["product"]
STARTS_AT = PLAN["starts_at"]  # seconds since the epoch
HOLD_ID = re.compile(r'id="hold-([0-9a-f-]{36})"')
CLIENT_SECRET = re.compile(r'data-client-secret="((pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+)"')
STRIPE_AUTH = {"Authorization": f"Bearer {PLAN['stripe_secret_key']}"}
CARD = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2035",
        "card[cvc]": "123"}

_due: list = []  # (when, sequence, shopper, step): the shop's requests
_stripe_due: list = []  # the same, for what a shopper's browser asks Stripe, which waits for no shop
_sequence = itertools.count()
_record = open(os.environ["REHEARSAL_RECORD"], "w")
_left = {"arrivals": len(PLAN["arrivals"])}


def later(when: float, shopper: "Shopper", step: str) -> None:
    heapq.heappush(_stripe_due if step == "pay" else _due, (when, next(_sequence), shopper, step))


class Shopper:
    def __init__(self, n: int, kind: str, address: str, arrives: float, chance: random.Random):
        self.n, self.kind, self.address, self.arrives = n, kind, address, arrives
        self.visitor = f"{kind}-{n:06d}"
        self.chance = chance
        self.hold_id = self.intent_id = self.client_secret = None
        self.cookies = None if kind == "script" else CookieJar()
        self.position, self.line_state, self.asked_at = None, None, 0.0
        self.pays = kind == "script" or chance.random() < PLAN["pay_share"]
        self.comes_back = chance.random() < PLAN["return_share"]

    @property
    def script(self) -> bool:
        return self.kind == "script"

    def think(self, low: float, high: float) -> float:
        return 0.05 if self.script else self.chance.uniform(low, high)

    def headers(self, **more) -> dict:
        return {"X-Forwarded-For": self.address, "X-Visitor-Id": self.visitor, **more}


def write(name: str, status: int, started: float, shopper: Shopper, outcome: str = "") -> None:
    _record.write(json.dumps({"t": round(started, 4), "route": name, "status": status,
                              "ms": round((time.time() - started) * 1000, 2), "who": shopper.visitor,
                              "kind": shopper.kind, "outcome": outcome}) + "\n")


def altcha(client, shopper: Shopper) -> str | None:
    if not PLAN["proof_of_work"]:
        return None
    started = time.time()
    with client.get("/api/queue/challenge", name="challenge", headers=shopper.headers(),
                    catch_response=True) as answer:
        write("challenge", answer.status_code, started, shopper)
        if answer.status_code != 200:
            answer.success()
            return None
        fields = answer.json()
        answer.success()
    solution = solve_challenge_v1(fields["challenge"], fields["salt"], fields["algorithm"], fields["maxnumber"])
    payload = {key: fields[key] for key in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**payload, "number": solution.number}).encode()).decode()


class Lane(FastHttpUser):
    """One keep-alive connection to the shop (through nginx) taking whichever shopper's request is due."""

    connection_timeout = 30.0
    network_timeout = 60.0
    due = _due

    @task
    def next_request(self):
        while True:
            if not self.due:
                if _left["arrivals"] == 0 and not any_busy() and not _due and not _stripe_due:
                    self.environment.runner.quit()
                gevent.sleep(0.05)
                continue
            when = self.due[0][0]
            now = time.time()
            if when > now:
                gevent.sleep(min(when - now, 0.05))
                continue
            _, _, shopper, step = heapq.heappop(self.due)
            _busy[0] += 1
            # A person is a browser that keeps the shop's cookie (its owner secret); a script sends none.
            jar = shopper.cookies if shopper.cookies is not None else CookieJar()
            self.client.cookiejar = self.client.client.cookiejar = jar
            try:
                getattr(self, step)(shopper, late=now - when)
            except Exception as error:  # the crowd's own mistake: counted, and the rehearsal says so
                write("crowd error", -1, time.time(), shopper, f"{step}: {type(error).__name__}: {error}")
            finally:
                _busy[0] -= 1

    # -- one step a request (or two: the proof of work's challenge and the join) --------------------

    def arrive(self, shopper: Shopper, late: float):
        _left["arrivals"] -= 1
        started = time.time()
        with self.client.get(f"/products/{PRODUCT}", name="product page", headers=shopper.headers(),
                             catch_response=True) as answer:
            write("product page", answer.status_code, started, shopper, f"late {late:.3f}")
            answer.success()
        later(time.time() + shopper.think(0.5, 2.0), shopper, "join")

    def join(self, shopper: Shopper, late: float):
        proof = altcha(self.client, shopper)
        body = {"userId": shopper.visitor, "entryId": str(_uuid4(shopper.chance))}
        if proof:
            body["altcha"] = proof
        started = time.time()
        with self.client.post(f"/api/queue/{PRODUCT}/entries", name="join", json=body, headers=shopper.headers(),
                              catch_response=True) as answer:
            error = _error(answer)
            write("join", answer.status_code, started, shopper, error)
            answer.success()
        if answer.status_code in (200, 201):
            first_look = max(time.time() + self.poll(shopper), STARTS_AT + shopper.chance.uniform(0, 2))
            later(first_look, shopper, "look")

    def poll(self, shopper: Shopper) -> float:
        return PLAN["script_poll_seconds"] if shopper.script else PLAN["poll_seconds"]

    def look(self, shopper: Shopper, late: float):
        """A round of the page's polls: the line's shared answer (nginx keeps it a second), and the place
        only when the page asks for it (storefront.js: once the line is one place away, when the line's
        state changes, and at least every minute). A script asks for its place every round."""
        if shopper.position and not shopper.script:
            started = time.time()
            with self.client.get(f"/api/queue/{PRODUCT}", name="line", headers=shopper.headers(),
                                 catch_response=True) as answer:
                line = answer.json() if answer.status_code == 200 else {}
                write("line", answer.status_code, started, shopper, line.get("state", ""))
                answer.success()
            state, through = line.get("state"), line.get("admittedThrough") or 0
            quiet = (state == "admitting" and state == shopper.line_state and shopper.position - through - 1 >= 1
                     and time.time() - shopper.asked_at < 60)
            shopper.line_state = state or shopper.line_state
            if quiet:
                later(time.time() + self.poll(shopper), shopper, "look")
                return
        shopper.asked_at = started = time.time()
        with self.client.get(f"/api/queue/{PRODUCT}/entries/mine", name="place", headers=shopper.headers(),
                             catch_response=True) as answer:
            place = answer.json() if answer.status_code == 200 else {}
            status = place.get("status", "")
            shopper.position = place.get("position") or shopper.position
            write("place", answer.status_code, started, shopper, status)
            answer.success()
        if status == "admitted":
            later(time.time() + shopper.think(0.5, 3.0), shopper, "hold")
        elif status == "waiting" or answer.status_code >= 500 or answer.status_code == 0:
            later(time.time() + self.poll(shopper), shopper, "look")

    def hold(self, shopper: Shopper, late: float):
        started = time.time()
        with self.client.post("/api/reservations", name="hold", data={"productId": PRODUCT, "userId": shopper.visitor},
                              headers=shopper.headers(**{"HX-Request": "true"}), catch_response=True) as answer:
            held, secret = HOLD_ID.search(answer.text or ""), CLIENT_SECRET.search(answer.text or "")
            write("hold", answer.status_code, started, shopper, "held" if held and secret else _error(answer))
            answer.success()
        if answer.status_code in (200, 201) and held and secret:
            shopper.hold_id, shopper.client_secret, shopper.intent_id = held.group(1), secret.group(1), secret.group(2)
            if shopper.pays:
                later(time.time() + shopper.think(3.0, 12.0), shopper, "pay")
            else:
                write("lapse", 0, time.time(), shopper, "lets the hold lapse")
        elif answer.status_code >= 500 or answer.status_code == 0:
            later(time.time() + 1.0, shopper, "hold")  # the page's Buy pressed again

    def pay(self, shopper: Shopper, late: float):
        """What Stripe.js's confirmPayment does with the card typed in, on the Stripe-compatible server
        (with the secret key: localstripe takes no publishable key with a client secret)."""
        started, card_id, status = time.time(), None, 200
        for path in ("/v1/payment_methods", f"/v1/payment_intents/{shopper.intent_id}",
                     f"/v1/payment_intents/{shopper.intent_id}/confirm"):
            data = CARD if card_id is None else {"payment_method": card_id} if path.endswith(shopper.intent_id) else {}
            with self.client.post(PLAN["stripe_url"] + path, data=data, headers=STRIPE_AUTH, name="stripe",
                                  catch_response=True) as answer:
                answer.success()
                status = answer.status_code
                if status != 200:
                    break
                card_id = card_id or answer.json()["id"]
        write("pay", status, started, shopper, "paid" if status == 200 else f"refused: {(answer.text or '')[:200]}")
        if status == 200 and shopper.comes_back:
            later(time.time() + shopper.think(0.5, 2.0), shopper, "come_back")

    def come_back(self, shopper: Shopper, late: float):
        """Stripe's redirect to the hold's page, as return_url names it."""
        started = time.time()
        path = (f"/reservations/{shopper.hold_id}?payment_intent={shopper.intent_id}"
                f"&payment_intent_client_secret={shopper.client_secret}&redirect_status=succeeded")
        with self.client.get(path, name="return", headers=shopper.headers(), catch_response=True) as answer:
            write("return", answer.status_code, started, shopper)
            answer.success()


class StripeLane(Lane):
    """A connection to the Stripe-compatible server: a shopper's card confirmation waits for Stripe
    alone, never behind the shop's crowd (each browser talks to Stripe on its own)."""

    fixed_count = 20
    due = _stripe_due


_busy = [0]


def any_busy() -> bool:
    return _busy[0] > 0


def _error(answer) -> str:
    try:
        return answer.json().get("error", "")
    except Exception:
        return ""


def _uuid4(chance: random.Random) -> uuid.UUID:
    """A random entry id, as the page draws one, from the shopper's own seeded chance (a run repeats)."""
    return uuid.UUID(int=chance.getrandbits(128), version=4)


@events.test_start.add_listener
def _plan(environment, **kwargs):
    for n, (offset, kind, address) in enumerate(PLAN["arrivals"]):
        shopper = Shopper(n, kind, address, STARTS_AT + offset, random.Random(f"{PLAN['seed']}-{n}"))
        later(shopper.arrives, shopper, "arrive")


@events.quitting.add_listener
def _close(environment, **kwargs):
    _record.close()
