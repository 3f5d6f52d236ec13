"""The hold rule's whole truth table, run through every form the rule takes.

One table of cases (stock, lapsed holds, start time, both limits, the owner's own hold, unknown and
archived products, a pause, the limit per buyer, and a drop's line: no place, waiting, admitted, the
pass spent or lapsed, more than a pass takes), each asked of:

- ``function``: PostgreSQL's ``storefront_place_hold`` (inventory/sql/), the hot path, alone;
- ``steps``: the grant step (inventory/grants.py) that a hold falls back to, on PostgreSQL;
- ``steps_sqlite``: the same step on SQLite, the embedded mode's only form;
- ``checkout``: a one-line cart checked out, granted by the same step.

So the forms cannot drift: a rule changed in one and not the others fails here, naming the case.
After every case the stock buckets still agree with the holds.
"""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from storefront.cart import checkout as carts
from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory import holds as hold_book
from storefront.inventory.grants import BuyerLimit, HoldLimit, HoldLimits, NotOnSale, OutOfStock, Paused, ProductNotFound
from storefront.inventory.models import Queue, QueueEntry
from storefront.inventory.queue import NotAdmitted
from storefront.inventory.stock import holds, sell_free_units, take_units
from storefront.owners import Owner
from tests.factories import counters_against_holds, make_product, visitor

LIMITS = HoldLimits(per_visitor=3, per_address=5)
ME = Owner(visitor(1), "browser-me")
MY_ADDRESS = "203.0.113.7"
TTL = 600


@dataclass(frozen=True)
class Held:
    """A hold already there when the case asks: whose, on which product, and whether it lapsed."""

    owner: Owner
    quantity: int = 1
    product: str = "wanted"  # or "other": a second product, for limits across products
    address: str = MY_ADDRESS
    lapsed: bool = False
    bought: bool = False  # COMPLETED: paid for


@dataclass(frozen=True)
class Case:
    name: str
    expected: tuple  # (outcome, detail)
    total: int = 2
    quantity: int = 1
    held: tuple[Held, ...] = ()
    starts_in: int | None = None  # seconds from now; negative: started
    product: str = "known"  # "unknown" or "archived"
    # What differs for a checkout, which takes over its owner's own hold instead of giving it back.
    checkout_expected: tuple | None = None
    # The one-statement function hands these to the step by step form, having changed nothing.
    function_needs_lock: bool = False
    only: tuple[str, ...] = field(default=())
    # A queued product (started a minute ago) and my place in its line: "admitted", "waiting", "spent"
    # (admitted, and its one hold made), "lapsed" (admitted, its pass run out), or "none" (no place).
    line: str | None = None
    paused: bool = False
    per_buyer: int | None = None


SOMEONE = Owner(visitor(2), "browser-someone")
MY_OTHER_BROWSER = Owner(ME.visitor_id, "browser-my-other")
CASES = [
    Case("units free", ("created", None)),
    Case("the last unit", ("created", None), total=1),
    Case("none left", ("out_of_stock", 0), total=1, held=(Held(SOMEONE),)),
    Case("fewer than asked", ("out_of_stock", 2), total=2, quantity=3),
    Case("a lapsed hold gives way", ("created", None), total=1, held=(Held(SOMEONE, lapsed=True),),
         function_needs_lock=True),
    Case("my own lapsed hold gives way", ("created", None), total=1, held=(Held(ME, lapsed=True),),
         function_needs_lock=True),
    Case("not on sale yet", ("not_on_sale", None), starts_in=3600),
    Case("on sale since a minute", ("created", None), starts_in=-60),
    Case("my own live hold comes back", ("existing", None), held=(Held(ME),), checkout_expected=("created", None)),
    Case("my own live hold comes back, none left", ("existing", None), total=1, held=(Held(ME),),
         checkout_expected=("created", None)),
    Case("my own live hold comes back at my limit", ("existing", None), total=5,
         held=(Held(ME), Held(ME, quantity=2, product="other")), checkout_expected=("created", None)),
    Case("the visitor's limit", ("hold_limit", ("visitor", 3)), held=(Held(ME, quantity=3, product="other"),)),
    Case("the limit counts my other browser behind my address", ("hold_limit", ("visitor", 3)),
         held=(Held(MY_OTHER_BROWSER, quantity=3, product="other"),)),
    Case("my other browser elsewhere does not count", ("created", None),
         held=(Held(MY_OTHER_BROWSER, quantity=3, product="other", address="198.51.100.9"),)),
    Case("lapsed holds count against no limit", ("created", None),
         held=(Held(ME, quantity=3, product="other", lapsed=True),)),
    Case("the address's limit", ("hold_limit", ("address", 5)),
         held=(Held(SOMEONE, quantity=3, product="other"), Held(Owner(visitor(3), "b3"), quantity=2, product="other"))),
    Case("someone else with my visitor id gets a hold of their own", ("created", None), held=(Held(MY_OTHER_BROWSER),)),
    Case("an unknown product", ("not_found", None), product="unknown", only=("function", "steps", "steps_sqlite")),
    Case("an archived product", ("not_found", None), product="archived", checkout_expected=("out_of_stock", 0)),
    Case("a paused product", ("paused", None), paused=True),
    Case("a paused product gives my live hold back", ("existing", None), paused=True, held=(Held(ME),),
         checkout_expected=("paused", None)),
    Case("more than one buyer may have", ("buyer_limit", 0), per_buyer=2, quantity=3, total=5),
    Case("what I bought counts for the buyer", ("buyer_limit", 1), per_buyer=2, quantity=2, total=5,
         held=(Held(ME, bought=True),)),
    Case("what someone else bought does not", ("created", None), per_buyer=1, total=5,
         held=(Held(SOMEONE, bought=True),)),
    Case("the line: admitted", ("created", None), line="admitted"),
    Case("the line: no place", ("not_admitted", None), line="none"),
    Case("the line: still waiting", ("not_admitted", None), line="waiting"),
    Case("the line: the pass spent", ("not_admitted", None), line="spent"),
    Case("the line: the pass lapsed", ("not_admitted", None), line="lapsed"),
    Case("the line: more than a pass takes", ("hold_limit", ("pass", 2)), line="admitted", quantity=2),
    Case("the line: admitted, none left", ("out_of_stock", 0), line="admitted", total=1, held=(Held(SOMEONE),)),
]
FORMS = ("function", "steps", "steps_sqlite", "checkout")


def _stage(case: Case):
    """The case's products and holds, as the database would have them; the id asked for."""
    now = utcnow()
    starts_at = now + timedelta(seconds=case.starts_in) if case.starts_in is not None else None
    if case.line is not None:
        starts_at = now - timedelta(seconds=60)
    wanted = make_product(total=case.total, starts_at=starts_at, queued=case.line is not None, paused=case.paused,
                          per_buyer=case.per_buyer)
    other = make_product(total=10)
    conn = db.session.connection()
    for held in case.held:
        product_id = wanted.id if held.product == "wanted" else other.id
        bucket = (sell_free_units if held.bought else take_units)(conn, product_id, held.quantity)
        assert bucket is not None, f"{case.name}: the scene holds more than there is"
        expires_at = now + (timedelta(seconds=-5) if held.lapsed else timedelta(seconds=TTL))
        conn.execute(insert(holds).values(
            id=uuid.uuid4(), product_id=product_id, bucket=bucket, user_id=held.owner.visitor_id,
            browser_id=held.owner.browser_id, client_address=held.address, quantity=held.quantity,
            amount=2500 * held.quantity, currency="usd", status="COMPLETED" if held.bought else "PENDING",
            expires_at=expires_at, created_at=now, updated_at=now, intent_checks=0))
    if case.line is not None:
        _stage_line(conn, wanted.id, case.line, now)
    db.session.commit()
    if case.product == "archived":
        db.session.execute(update(Product).where(Product.id == wanted.id).values(archived_at=now))
        db.session.commit()
    return (wanted.id if case.product != "unknown" else wanted.id + 1000), wanted.id


def _stage_line(conn, product_id: int, line: str, now) -> None:
    """The product's waiting room, ranked at the start, and my place in it as the case says."""
    seed = b"s" * 32
    conn.execute(insert(Queue.__table__).values(product_id=product_id, seed=seed, seed_hash="0" * 64, opened_at=now,
                                                ranked_at=now, ranked_places=1, last_position=1, admitted_through=1))
    if line == "none":
        return
    admitted = line != "waiting"
    pass_expires_at = now + timedelta(seconds=-1 if line == "lapsed" else 120)
    conn.execute(insert(QueueEntry.__table__).values(
        id=uuid.uuid4(), product_id=product_id, user_id=ME.visitor_id, browser_id=ME.browser_id,
        client_address=MY_ADDRESS, joined_at=now, rank_key=b"k" * 32, position=1,
        admitted_at=now if admitted else None, pass_expires_at=pass_expires_at if admitted else None,
        held_at=now if line == "spent" else None))


def _outcome(place) -> tuple:
    try:
        placed = place()
    except NotAdmitted:
        return ("not_admitted", None)
    except Paused:
        return ("paused", None)
    except BuyerLimit as limit:
        return ("buyer_limit", limit.held)
    except OutOfStock as short:
        return ("out_of_stock", short.available)
    except NotOnSale:
        return ("not_on_sale", None)
    except HoldLimit as limit:
        return ("hold_limit", (limit.per, limit.held))
    except ProductNotFound:
        return ("not_found", None)
    if placed is None:
        return ("needs_lock", None)
    return ("created" if placed.created else "existing", None)


def _ask(form: str, product_id: int, quantity: int):
    if form == "function":
        return hold_book.place_hold_in_one_statement(product_id, ME, MY_ADDRESS, quantity, TTL, LIMITS)
    if form in ("steps", "steps_sqlite"):
        return hold_book.place_hold_step_by_step(product_id, ME, MY_ADDRESS, quantity, TTL, LIMITS)
    with db.engine.begin() as conn:
        carts.set_line(conn, ME, product_id, quantity)
    with db.engine.begin() as conn:
        placed = carts.place_checkout(conn, ME, MY_ADDRESS, TTL, LIMITS)
    return hold_book.PlacedHold(placed.holds[0], created=True)


@pytest.fixture
def sqlite_app(tmp_path):
    import flask_migrate

    from storefront import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'grants.db'}"}, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        flask_migrate.upgrade()
        yield app
        db.session.remove()
        db.engine.dispose()


def _cases():
    for form in FORMS:
        for case in CASES:
            if case.only and form not in case.only:
                continue
            yield pytest.param(form, case, id=f"{form}: {case.name}")


@pytest.mark.parametrize(("form", "case"), list(_cases()))
def test_the_rule(form, case, request):
    request.getfixturevalue("sqlite_app" if form == "steps_sqlite" else "app")
    product_id, staged_id = _stage(case)
    expected = case.checkout_expected if form == "checkout" and case.checkout_expected else case.expected
    if form == "function" and case.function_needs_lock:
        expected = ("needs_lock", None)
    assert _outcome(lambda: _ask(form, product_id, case.quantity)) == expected
    assert counters_against_holds(staged_id) == []


def test_every_form_is_asked_every_case_it_can_answer():
    asked = {(form, case.name) for form, case in (p.values for p in _cases())}
    assert len(asked) == len(FORMS) * len(CASES) - sum(len(FORMS) - len(c.only) for c in CASES if c.only)
    assert {form for form, _ in asked} == set(FORMS)
