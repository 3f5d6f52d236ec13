"""GET /api/inventory/check/<id>, and availability as the contract's formula defines it."""

import time
import uuid

import psycopg
import pytest
from sqlalchemy import select, text

from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.holds import HoldLimits, place_hold, sweep_lapsed_holds
from storefront.inventory.models import Hold
from storefront.inventory.stock import lock_product, sell_free_units
from storefront.owners import Owner
from tests.factories import lapse, make_product, visitor, units


def available(client, product_id):
    return client.get(f"/api/inventory/check/{product_id}").get_json()["available"]


def hold(client, product_id, user, quantity=1):
    return client.post("/api/reservations", json={"productId": product_id, "userId": user, "quantity": quantity})


def test_stock_check_json(client):
    product = make_product(total=10)
    response = client.get(f"/api/inventory/check/{product.id}")
    assert response.status_code == 200
    assert response.get_json() == {"productId": product.id, "available": 10, "total": 10, "inStock": True}
    assert "HX-Request" in response.headers["Vary"]


def test_stock_check_fragment_holds_an_enabled_buy_button(client, rendered):
    product = make_product(total=2)
    response = client.get(f"/api/inventory/check/{product.id}", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert rendered == ["shop/_stock.html"]
    assert "<html" not in html
    assert "HX-Request" in response.headers["Vary"]
    assert f'id="stock-{product.id}"' in html
    assert "<button" in html and "disabled" not in html
    assert 'aria-live="polite"' in html


def test_stock_check_fragment_disables_buy_when_nothing_is_left(client):
    product = make_product(total=1)
    hold(client, product.id, visitor(1))
    response = client.get(f"/api/inventory/check/{product.id}", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "disabled" in html
    assert "Sold out" in html
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["inStock"] is False


@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}])
def test_unknown_product_is_404_and_varies(client, headers):
    response = client.get("/api/inventory/check/424242", headers=headers)
    assert response.status_code == 404
    assert "HX-Request" in response.headers["Vary"]
    if not headers:
        assert response.get_json()["error"] == "not_found"


def test_the_stock_check_is_its_fragment_for_any_htmx_request_boosted_or_restoring(client):
    """A shared answer depends on HX-Request alone (issue 41: a boosted request once got JSON, and a
    cache keyed on HX-Request handed it to every poller for a second)."""
    product = make_product(total=1)
    plain = client.get(f"/api/inventory/check/{product.id}", headers={"HX-Request": "true"})
    for extra in ({"HX-Boosted": "true"}, {"HX-History-Restore-Request": "true"}):
        response = client.get(f"/api/inventory/check/{product.id}", headers={"HX-Request": "true", **extra})
        assert not response.is_json and response.data == plain.data


def test_completed_holds_count_against_stock(client):
    product = make_product(total=3)
    db.session.add(
        Hold(product_id=product.id, user_id=visitor(9), quantity=2, amount=0, currency="usd",
             status="COMPLETED", expires_at=utcnow())
    )
    db.session.commit()
    with db.engine.begin() as conn:
        lock_product(conn, product.id)
        assert sell_free_units(conn, product.id, 2) is not None
    assert available(client, product.id) == 1


def test_a_lapsed_hold_stops_counting_before_any_sweep(client):
    product = make_product(total=1)
    created = hold(client, product.id, visitor(1)).get_json()
    assert available(client, product.id) == 0

    lapse(created["reservationId"])

    # Nothing has swept: the row still says PENDING, yet the unit is free.
    assert db.session.execute(select(Hold.status)).scalar_one() == "PENDING"
    assert available(client, product.id) == 1
    shown = client.get(f"/api/reservations/{created['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert shown.get_json()["status"] == "EXPIRED"
    assert client.delete(
        f"/api/reservations/{created['reservationId']}", headers={"X-Visitor-Id": visitor(1)}
    ).status_code == 409

    # Another visitor takes the unit; the lapsed hold is released on the way.
    assert hold(client, product.id, visitor(2)).status_code == 201
    assert available(client, product.id) == 0
    db.session.expire_all()
    assert units(product.id).held == 1


def test_a_hold_lapses_the_moment_its_time_runs_out(make_app, settings):
    app = make_app({**settings, "HOLD_TTL_SECONDS": "1"})
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        held = hold(client, product.id, visitor(1))
        assert held.status_code == 201
        expires_at = db.session.get(Hold, uuid.UUID(held.get_json()["reservationId"])).expires_at

        def database_clock():
            with db.engine.connect() as conn:
                return conn.execute(text("SELECT clock_timestamp()")).scalar_one()

        # Watch the stock, on the database's clock, until the unit is free again (no sweep runs):
        # held while the hold lives, free from its expires_at on, however slow this machine is.
        seen, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:
            before = database_clock()
            count = available(client, product.id)
            seen.append((before, count, database_clock()))
            if count == 1:
                break
            time.sleep(0.05)
        assert seen[-1][1] == 1, "the unit never came back"
        assert all(before < expires_at for before, count, _ in seen if count == 0)
        assert all(after >= expires_at for _, count, after in seen if count == 1)
        assert hold(client, product.id, visitor(2)).status_code == 201


def test_the_same_visitor_gets_a_new_hold_once_theirs_lapsed(client):
    product = make_product(total=1)
    first = hold(client, product.id, visitor(1)).get_json()
    lapse(first["reservationId"])
    second = hold(client, product.id, visitor(1))
    assert second.status_code == 201
    assert second.get_json()["reservationId"] != first["reservationId"]


def test_sweep_marks_lapsed_holds_expired_and_keeps_the_counters_true(client):
    product = make_product(total=5)
    other = make_product(total=5)
    lapsed = [hold(client, product.id, visitor(n), quantity=2).get_json() for n in (1, 2)]
    lapsed.append(hold(client, other.id, visitor(3)).get_json())
    live = hold(client, product.id, visitor(4)).get_json()
    for created in lapsed:
        lapse(created["reservationId"])

    assert sweep_lapsed_holds() == 5
    assert sweep_lapsed_holds() == 0  # twice changes nothing

    statuses = dict(db.session.execute(select(Hold.id, Hold.status)).all())
    assert {str(k): v for k, v in statuses.items()} == {
        lapsed[0]["reservationId"]: "EXPIRED",
        lapsed[1]["reservationId"]: "EXPIRED",
        lapsed[2]["reservationId"]: "EXPIRED",
        live["reservationId"]: "PENDING",
    }
    db.session.expire_all()
    assert units(product.id).held == 1
    assert units(other.id).held == 0
    assert available(client, product.id) == 4


def test_an_unchanged_stock_is_a_304_and_any_change_shows_in_the_next_check(client):
    product = make_product(total=2)
    url = f"/api/inventory/check/{product.id}"
    first = client.get(url)
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert first.headers["Cache-Control"] == "public, max-age=0, s-maxage=1" and "HX-Request" in first.headers["Vary"]
    assert first.headers["ETag"] != fragment.headers["ETag"]  # two answers, two tags

    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == first.headers["ETag"]
    # Only what caching needs: the stored answer keeps its security headers, and a script's
    # conditional poll is not handed a browser cookie.
    assert again.headers["Cache-Control"] == "public, max-age=0, s-maxage=1" and "HX-Request" in again.headers["Vary"]
    assert "Content-Security-Policy" not in again.headers and "Set-Cookie" not in again.headers
    assert "Content-Security-Policy" in first.headers
    unchanged = client.get(url, headers={"HX-Request": "true", "If-None-Match": fragment.headers["ETag"]})
    assert unchanged.status_code == 304

    held = client.post("/api/reservations", json={"productId": product.id, "userId": "visitor-etag-001"}).get_json()
    after_hold = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert after_hold.status_code == 200 and after_hold.get_json()["available"] == 1
    lapse(held["reservationId"])  # a lapse, not yet swept: the very next check shows it
    after_lapse = client.get(url, headers={"If-None-Match": after_hold.headers["ETag"]})
    assert after_lapse.status_code == 200 and after_lapse.get_json()["available"] == 2


def test_a_statement_that_fails_on_the_hot_connection_leaves_it_usable(app, client):
    """Holds and stock checks keep one connection and one cursor per thread: a statement that
    fails on them (here the database refusing a hold of no units) must not spoil the next."""
    product = make_product(total=5)
    with app.test_request_context():
        with pytest.raises(psycopg.errors.CheckViolation):
            place_hold(product.id, Owner(visitor(1), ""), "127.0.0.1", 0, 600, HoldLimits(10, 20))
    assert hold(client, product.id, visitor(2)).status_code == 201
    assert available(client, product.id) == 4
