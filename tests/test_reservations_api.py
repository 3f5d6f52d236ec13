"""POST/GET/DELETE /api/reservations, as the contract words them, on PostgreSQL."""

import uuid

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from storefront.catalog.models import Product
from storefront.database import one_statement
from storefront.extensions import db
from tests.factories import make_product, visitor, units


def hold(client, product_id, user_id=None, quantity=None, **kwargs):
    body = {"productId": product_id, "userId": user_id or visitor(1)}
    if quantity is not None:
        body["quantity"] = quantity
    return client.post("/api/reservations", json=body, **kwargs)


def counters(product_id):
    db.session.expire_all()
    product = db.session.get(Product, product_id)
    return units(product.id).held, units(product.id).sold


def test_hold_is_created_with_the_contract_body(client):
    product = make_product(total=3, price=2500)
    response = hold(client, product.id, quantity=2)
    assert response.status_code == 201
    body = response.get_json()
    assert uuid.UUID(body["reservationId"])
    assert body["status"] == "PENDING"
    assert body["productId"] == product.id
    assert body["userId"] == visitor(1)
    assert body["quantity"] == 2
    assert body["amount"] == 5000
    assert body["currency"] == "usd"
    assert body["expiresAt"].endswith("Z")
    assert body["paymentIntentId"] is None
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 1
    assert counters(product.id) == (2, 0)


def test_hold_ids_are_made_in_time_order_so_new_holds_go_to_the_end_of_the_primary_key(client):
    # UUIDv7 (RFC 9562): random ids scattered new holds over the whole index, and its WAL with them.
    made = [hold(client, make_product(total=1).id).get_json()["reservationId"] for _ in range(5)]
    ids = [uuid.UUID(reservation) for reservation in made]
    assert [each.version for each in ids] == [7] * 5
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_form_body_is_accepted_and_quantity_defaults_to_one(client):
    product = make_product(total=2)
    response = client.post("/api/reservations", data={"productId": str(product.id), "userId": visitor(2)})
    assert response.status_code == 201
    assert response.get_json()["quantity"] == 1


def test_same_visitor_gets_the_same_hold_back_with_200(client):
    product = make_product(total=5)
    first = hold(client, product.id)
    again = hold(client, product.id, quantity=3)
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert counters(product.id) == (1, 0)


def test_same_visitor_gets_their_hold_back_even_when_it_took_the_last_unit(client):
    product = make_product(total=1)
    first = hold(client, product.id)
    again = hold(client, product.id)
    assert again.status_code == 200
    assert again.get_json()["reservationId"] == first.get_json()["reservationId"]


def test_out_of_stock_is_409_with_what_is_available(client):
    product = make_product(total=2)
    assert hold(client, product.id, visitor(1), quantity=2).status_code == 201
    response = hold(client, product.id, visitor(2))
    assert response.status_code == 409
    assert response.get_json()["error"] == "out_of_stock"
    assert response.get_json()["available"] == 0
    assert counters(product.id) == (2, 0)


def test_asking_for_more_than_is_left_is_409_and_holds_nothing(client):
    product = make_product(total=3)
    hold(client, product.id, visitor(1), quantity=2)
    response = hold(client, product.id, visitor(2), quantity=2)
    assert response.status_code == 409
    assert response.get_json()["available"] == 1
    assert counters(product.id) == (2, 0)


def test_unknown_product_is_404(client):
    response = hold(client, 999_999)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": visitor(1)}, "productId"),
        ({"productId": "abc", "userId": visitor(1)}, "productId"),
        ({"productId": True, "userId": visitor(1)}, "productId"),
        ({"productId": 1.5, "userId": visitor(1)}, "productId"),
        ({"productId": [1], "userId": visitor(1)}, "productId"),
        ({"productId": -1, "userId": visitor(1)}, "productId"),
        ({"productId": 10**30, "userId": visitor(1)}, "productId"),
        ({"productId": "PRODUCT"}, "userId"),
        ({"productId": "PRODUCT", "userId": "short"}, "userId"),
        ({"productId": "PRODUCT", "userId": "x" * 129}, "userId"),
        ({"productId": "PRODUCT", "userId": "has spaces in it"}, "userId"),
        ({"productId": "PRODUCT", "userId": "semi;colon;id"}, "userId"),
        ({"productId": "PRODUCT", "userId": 12345678}, "userId"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": 0}, "quantity"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": -2}, "quantity"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": 6}, "quantity"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": "two"}, "quantity"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": 2.5}, "quantity"),
        # JSON says what a number is: a string of digits or a null is not one (a form's text is).
        ({"productId": "PRODUCT_TEXT", "userId": visitor(1)}, "productId"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": None}, "quantity"),
        ({"productId": "PRODUCT", "userId": visitor(1), "quantity": "2"}, "quantity"),
    ],
)
def test_malformed_fields_are_400_naming_the_field_and_change_nothing(client, body, field):
    product = make_product(total=10)
    body = {key: {"PRODUCT": product.id, "PRODUCT_TEXT": str(product.id)}.get(value, value) if isinstance(value, str)
            else value for key, value in body.items()}
    response = client.post("/api/reservations", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.get_json()["field"] == field
    assert counters(product.id) == (0, 0)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ('"text"', "application/json"),
     # Nested deeper than the parser goes (within the size limit): a RecursionError was a 500.
     ("[" * 60_000, "application/json"), ('{"a":' * 12_000, "application/json"),
     (b"\xff\xfe\x00{", "application/json")],
)
def test_a_body_that_is_not_a_json_object_is_400(client, data, content_type):
    response = client.post("/api/reservations", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_malformed_json_says_it_did_not_parse_and_json_that_is_no_object_says_so(client):
    broken = client.post("/api/reservations", data="{not json", content_type="application/json").get_json()
    assert (broken["field"], broken["message"]) == ("body", "The body is not valid JSON.")
    listed = client.post("/api/reservations", data="[1, 2]", content_type="application/json").get_json()
    assert (listed["field"], listed["message"]) == ("body", "The body must be a JSON object.")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml"])
def test_a_body_that_is_neither_json_nor_a_form_is_415_naming_the_header(client, content_type):
    """A script's JSON sent without its Content-Type was read as an empty form: "productId is required"."""
    product = make_product(total=2)
    body = f'{{"productId": {product.id}, "userId": "{visitor(1)}"}}'
    headers = {"Content-Type": content_type} if content_type else {}
    environ = {} if content_type else {"CONTENT_TYPE": ""}
    response = client.post("/api/reservations", data=body, headers=headers, environ_overrides=environ)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"
    assert response.get_json()["header"] == "Content-Type"
    assert counters(product.id) == (0, 0)
    # A form and JSON, said as such, still hold; so does a checkout's empty POST.
    assert client.post("/api/reservations", data={"productId": product.id, "userId": visitor(1)}).status_code == 201
    assert hold(client, product.id, visitor(2)).status_code == 201


def test_a_one_megabyte_body_is_413(client):
    response = client.post("/api/reservations", data="x" * 1_000_000, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_wrong_method_is_405_json(client):
    response = client.put("/api/reservations")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_visitor_reads_their_hold(client):
    product = make_product(total=2)
    created = hold(client, product.id).get_json()
    response = client.get(f"/api/reservations/{created['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert response.status_code == 200
    assert response.get_json() == created
    by_query = client.get(f"/api/reservations/{created['reservationId']}?userId={visitor(1)}")
    assert by_query.get_json() == created


def test_another_visitor_cannot_read_or_cancel_a_hold(client):
    product = make_product(total=2)
    created = hold(client, product.id, visitor(1)).get_json()
    url = f"/api/reservations/{created['reservationId']}"
    assert client.get(url, headers={"X-Visitor-Id": visitor(2)}).status_code == 404
    response = client.delete(url, headers={"X-Visitor-Id": visitor(2)})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert client.get(url, headers={"X-Visitor-Id": visitor(1)}).get_json()["status"] == "PENDING"
    assert counters(product.id) == (1, 0)


@pytest.mark.parametrize("reservation", ["0b9e6a52-3f41-4c0e-9d4a-5b7c2e8f1a63", "not-a-uuid", "1"])
def test_unknown_or_malformed_reservation_is_404(client, reservation):
    for method in (client.get, client.delete):
        response = method(f"/api/reservations/{reservation}", headers={"X-Visitor-Id": visitor(1)})
        assert response.status_code == 404


def test_reading_a_hold_without_a_visitor_id_is_400(client):
    product = make_product(total=2)
    created = hold(client, product.id).get_json()
    response = client.get(f"/api/reservations/{created['reservationId']}")
    assert response.status_code == 400
    assert response.get_json()["field"] == "userId"


def test_cancel_frees_the_stock_at_once_and_twice_is_409(client):
    product = make_product(total=1)
    created = hold(client, product.id, visitor(1)).get_json()
    url = f"/api/reservations/{created['reservationId']}"
    response = client.delete(url, headers={"X-Visitor-Id": visitor(1)})
    assert response.status_code == 200
    assert response.get_json()["status"] == "CANCELLED"
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 1
    again = client.delete(url, headers={"X-Visitor-Id": visitor(1)})
    assert again.status_code == 409
    assert again.get_json()["status"] == "CANCELLED"
    assert hold(client, product.id, visitor(2)).status_code == 201
    assert counters(product.id) == (1, 0)


def test_a_cancelled_visitor_may_hold_again(client):
    product = make_product(total=1)
    first = hold(client, product.id, visitor(1)).get_json()
    client.delete(f"/api/reservations/{first['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    second = hold(client, product.id, visitor(1))
    assert second.status_code == 201
    assert second.get_json()["reservationId"] != first["reservationId"]


def test_htmx_hold_answers_with_the_hold_fragment(client, rendered):
    product = make_product(total=1)
    response = client.post(
        "/api/reservations", data={"productId": product.id, "userId": visitor(1)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 201
    assert rendered[0] == "shop/_hold.html"
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert "HX-Request" in response.headers["Vary"]
    assert 'data-status="PENDING"' in html
    # The page hears that the stock changed, and asks for its live parts (the Buy button among them).
    assert response.headers["HX-Trigger"] == "stock-changed" and "hx-swap-oob" not in html


def test_htmx_out_of_stock_answers_409_with_the_sold_out_fragment(client, rendered):
    product = make_product(total=1)
    hold(client, product.id, visitor(1))
    response = client.post(
        "/api/reservations", data={"productId": product.id, "userId": visitor(2)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 409
    assert rendered[0] == "shop/_sold_out.html"
    assert "<html" not in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "stock-changed"


def test_htmx_bad_input_answers_400_with_an_error_fragment(client, rendered):
    response = client.post("/api/reservations", data={"productId": "x"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert rendered == ["errors/_error.html"]
    assert 'data-error="invalid_request"' in response.get_data(as_text=True)


def test_htmx_cancel_re_renders_the_hold_in_place(client, rendered):
    product = make_product(total=1)
    created = hold(client, product.id, visitor(1)).get_json()
    response = client.delete(
        f"/api/reservations/{created['reservationId']}",
        headers={"X-Visitor-Id": visitor(1), "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert rendered[0] == "shop/_hold.html"
    assert 'data-status="CANCELLED"' in response.get_data(as_text=True)



def test_holds_work_when_postgresql_plans_them_generically(client):
    """psycopg prepares a statement after a few runs, and PostgreSQL may then plan it
    generically, without the parameters' values: the hold's ON CONFLICT must still find
    its partial unique index, and the stock check its partial index. Forced here."""
    def prepare_everything_generically(dbapi_connection, connection_record):
        dbapi_connection.prepare_threshold = 0
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        dbapi_connection.commit()

    # The pool the session, the holds and the stock checks share: every connection made afresh.
    db.session.remove()
    db.engine.dispose()
    event.listen(Engine, "connect", prepare_everything_generically)
    try:
        product = make_product(total=50)
        for n in range(10):
            assert hold(client, product.id, visitor(n)).status_code == 201
            assert hold(client, product.id, visitor(n)).status_code == 200
            assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 50 - n - 1
        assert counters(product.id) == (10, 0)
        with one_statement() as cursor:  # the connection the hot paths just used
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_generic_plan" and cursor.connection.prepare_threshold == 0
    finally:
        event.remove(Engine, "connect", prepare_everything_generically)
        db.session.remove()
        db.engine.dispose()
