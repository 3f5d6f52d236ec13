"""Orders: delivery details given with the payment, kept whichever way it settles, shown only
to their own browser; /orders groups a checkout into one order; the confirmation email goes
out once, through a real SMTP server (aiosmtpd), and never holds up the payment."""

import re
import socket
import time
import uuid
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text, update

from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.orders.book import reference_of
from storefront.orders.jobs import send_order_confirmation
from storefront.orders.models import Order
from tests.factories import DELIVERY, TEST_WEBHOOK_SECRET, intent_event, make_product, stripe_signature, visitor

HTMX = {"HX-Request": "true"}


class _ControllerOnSocket(Controller):
    """aiosmtpd's Controller, serving on a socket bound beforehand."""

    def __init__(self, handler, bound: socket.socket):
        self.bound = bound
        super().__init__(handler, hostname="127.0.0.1", port=bound.getsockname()[1])

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.bound)


class Inbox:
    """An SMTP server on a free loopback port that keeps what it receives."""

    def __init__(self):
        self.messages = []
        # Bound now (port 0: the system picks a free one, and nobody can take it from us),
        # listened on only once started: until then a connection is refused, as to a server down.
        bound = socket.socket()
        bound.bind(("127.0.0.1", 0))
        self.port = bound.getsockname()[1]
        self.controller = _ControllerOnSocket(self, bound)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def inbox():
    box = Inbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def shop(make_app, settings):
    app = make_app({**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET})
    with app.app_context():
        yield app


def hold_for(client, product, user=1):
    response = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(user)})
    assert response.status_code == 201
    return response.get_json()


def pay_in_demo(client, hold, user=1, **details):
    return client.post(f"/reservations/{hold['reservationId']}/demo-payment", data={**DELIVERY, **details},
                       headers={**HTMX, "X-Visitor-Id": visitor(user)})


def order_row(order_id) -> Order | None:
    db.session.expire_all()
    return db.session.get(Order, uuid.UUID(str(order_id)))


def test_paying_with_an_address_makes_a_paid_order_its_shopper_can_read(shop):
    client = shop.test_client()
    client.get("/")  # a browser: its first page gives it the browser secret the details are shown to
    product = make_product(total=2, name="Copper kettle", price=4200)
    hold = hold_for(client, product)
    paid = pay_in_demo(client, hold)
    assert paid.status_code == 200
    assert f"/orders/{hold['reservationId']}" in paid.get_data(as_text=True)

    order = order_row(hold["reservationId"])
    assert (order.kind, order.amount, order.email, order.ship_city, order.ship_country) == (
        "hold", 4200, "ada@example.com", "London", "GB")
    assert order.paid_at is not None and order.shipped_at is None

    page = client.get(f"/orders/{hold['reservationId']}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" not in html
    assert reference_of(uuid.UUID(hold["reservationId"])) in html
    assert "12 Marylebone Road" in html and "NW1 5LR London" in html and "United Kingdom" in html
    assert 'data-status="paid"' in html and "$42.00" in html

    # The same browser whose fingerprint changed still sees it; a script with another visitor id, and
    # another browser with the same fingerprint, see no such order.
    assert client.get(f"/orders/{hold['reservationId']}",
                      headers={**HTMX, "X-Visitor-Id": visitor(2)}).status_code == 200
    assert shop.test_client().get(f"/orders/{hold['reservationId']}",
                                  headers={**HTMX, "X-Visitor-Id": visitor(2)}).status_code == 404
    other_browser = shop.test_client()
    other_browser.get("/")  # a page load gives it a browser cookie of its own
    assert other_browser.get(f"/orders/{hold['reservationId']}",
                             headers={**HTMX, "X-Visitor-Id": visitor(1)}).status_code == 404
    assert client.get("/orders/not-a-uuid", headers={**HTMX, "X-Visitor-Id": visitor(1)}).status_code == 404


@pytest.mark.parametrize(("field", "value"), [
    ("email", ""), ("email", "ada.example.com"), ("name", ""), ("line1", ""), ("city", ""),
    ("country", "ZZ"), ("country", ""), ("postalCode", "x" * 21), ("postalCode", "ABC"), ("line2", "y" * 201),
])
def test_bad_delivery_details_are_refused_in_the_form_and_change_nothing(shop, field, value):
    client = shop.test_client()
    product = make_product(total=1)
    hold = hold_for(client, product)
    refused = pay_in_demo(client, hold, **{field: value})
    assert refused.status_code == 400
    assert 'data-error="invalid_request"' in refused.get_data(as_text=True)
    assert refused.headers["HX-Retarget"] == "find .payment-error"  # shown inside the form, which stays
    assert order_row(hold["reservationId"]) is None
    status = client.get(f"/api/reservations/{hold['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert status.get_json()["status"] == "PENDING"

    as_json = client.post(f"/api/reservations/{hold['reservationId']}/delivery", json={**DELIVERY, field: value},
                          headers={"X-Visitor-Id": visitor(1)})
    assert as_json.status_code == 400 and as_json.get_json()["field"] == field


def test_details_given_before_the_webhook_are_on_the_order_it_pays(shop):
    client = shop.test_client()
    product = make_product(total=1, price=1800)
    hold = hold_for(client, product)
    saved = client.post(f"/api/reservations/{hold['reservationId']}/delivery", json=DELIVERY,
                        headers={"X-Visitor-Id": visitor(1)})
    assert saved.status_code == 200 and saved.get_json() == {"saved": True}
    order = order_row(hold["reservationId"])
    assert order.ship_name == "Ada Lovelace" and order.paid_at is None

    # Given again before paying: the new details replace the old.
    client.post(f"/api/reservations/{hold['reservationId']}/delivery", json={**DELIVERY, "city": "Leeds"},
                headers={"X-Visitor-Id": visitor(1)})
    payload = intent_event(hold, shipping={"name": "Someone Else", "address": {"line1": "1 Elsewhere"}},
                           receipt_email="else@example.com")
    assert client.post("/api/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": stripe_signature(payload)}).status_code == 200
    order = order_row(hold["reservationId"])
    assert order.paid_at is not None
    # The order's own details stand; what Stripe kept only fills what the order lacks.
    assert (order.ship_name, order.ship_city, order.email) == ("Ada Lovelace", "Leeds", "ada@example.com")
    paid_at = order.paid_at
    # The same event again changes nothing.
    client.post("/api/webhooks/stripe", data=payload, headers={"Stripe-Signature": stripe_signature(payload)})
    assert order_row(hold["reservationId"]).paid_at == paid_at
    # Once paid, the details stay as they were paid for.
    late = client.post(f"/api/reservations/{hold['reservationId']}/delivery", json={**DELIVERY, "city": "York"},
                       headers={"X-Visitor-Id": visitor(1)})
    assert late.status_code == 409
    assert order_row(hold["reservationId"]).ship_city == "Leeds"


def test_a_payment_settled_without_the_forms_details_takes_stripes(shop):
    client = shop.test_client()
    hold = hold_for(client, make_product(total=1))
    payload = intent_event(hold, receipt_email="grace@example.com", shipping={
        "name": "Grace Hopper", "address": {"line1": "1 Navy Way", "city": "Arlington", "country": "US",
                                            "postal_code": "22202", "state": "VA"}})
    client.post("/api/webhooks/stripe", data=payload, headers={"Stripe-Signature": stripe_signature(payload)})
    order = order_row(hold["reservationId"])
    assert (order.email, order.ship_name, order.ship_state, order.paid_at is not None) == (
        "grace@example.com", "Grace Hopper", "VA", True)


def test_orders_group_a_checkouts_lines_with_one_reference_and_local_dates(shop):
    client = shop.test_client()
    mug, print_ = make_product(total=3, name="Mug", price=1200), make_product(total=3, name="Print", price=3000)
    for product in (mug, print_):
        client.post("/api/cart/items", json={"productId": product.id, "quantity": 1, "userId": visitor(1)})
    checkout = client.post("/api/checkouts", json={"userId": visitor(1)}).get_json()
    single = hold_for(client, make_product(total=1, name="Lamp"))
    paid = client.post(f"/checkouts/{checkout['checkoutId']}/demo-payment", data=DELIVERY,
                       headers={**HTMX, "X-Visitor-Id": visitor(1)})
    assert paid.status_code == 200
    assert paid.headers["HX-Trigger"] == "cart-changed"  # the cart on the page re-reads itself: empty
    assert client.get("/api/cart", headers={"X-Visitor-Id": visitor(1)}).get_json()["items"] == []

    # A fixed moment, late on 14 July in UTC: already the 15th in Paris.
    placed = datetime(2026, 7, 14, 23, 30, tzinfo=timezone.utc)
    db.session.execute(update(Hold.__table__).where(Hold.__table__.c.checkout_id == uuid.UUID(checkout["checkoutId"]))
                       .values(created_at=placed))
    db.session.commit()
    client.set_cookie("storefront_tz", "Europe/Paris")
    listing = client.get("/orders", headers={**HTMX, "X-Visitor-Id": visitor(1), "Accept-Language": "fr-FR,fr"})
    html = listing.get_data(as_text=True)
    assert html.count("data-order=") == 2  # one checkout of two lines, and one hold
    checkout_reference = reference_of(uuid.UUID(checkout["checkoutId"]))
    assert checkout_reference in html and reference_of(uuid.UUID(single["reservationId"])) in html
    row = html.split(f'data-order="{checkout_reference}"')[1].split("</tr>")[0]
    assert "1 × Mug, 1 × Print" in row and "$42.00" in row and 'data-status="paid"' in html
    assert 'data-status="held"' in html
    placed_cell = row.split("<td>")[1].split("</td>")[0]
    assert "15 juil. 2026" in placed_cell and "01:30" in placed_cell  # French, in Paris time (UTC+2)
    assert " UTC" not in html

    json_orders = client.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}).get_json()["orders"]
    assert {o["reference"] for o in json_orders if o["checkoutId"]} == {checkout_reference}


@pytest.mark.parametrize(("country", "state", "postal_code", "accepted"), [
    ("US", "CA", "ABC", False), ("US", "CA", "95014", True), ("US", "CA", "22162-1010", True),
    ("GB", "", "nw1 5lr", True), ("GB", "", "12345", False), ("JP", "Tokyo", "100-0001", True), ("JP", "Tokyo", "1000", False),
])
def test_a_postal_code_is_checked_for_its_country(country, state, postal_code, accepted):
    from storefront.orders.delivery import InvalidDelivery, parse_delivery

    details = {**DELIVERY, "country": country, "state": state, "postalCode": postal_code}
    if accepted:
        assert parse_delivery(details).postal_code == postal_code
    else:
        with pytest.raises(InvalidDelivery) as refused:
            parse_delivery(details)
        assert refused.value.field == "postalCode" and "does not look right" in refused.value.message


def test_the_confirmation_is_emailed_once_through_smtp(make_app, settings, inbox):
    app = make_app({**settings, "MAIL_URL": inbox.url, "MAIL_FROM": "Copper Shop <orders@copper.example>"})
    with app.app_context():
        client = app.test_client()
        hold = hold_for(client, make_product(total=1, name="Copper kettle", price=4200))
        assert pay_in_demo(client, hold).status_code == 200
        reference = reference_of(uuid.UUID(hold["reservationId"]))
        assert len(inbox.messages) == 1
        message = inbox.messages[0]
        assert message["To"] == "ada@example.com" and message["From"] == "Copper Shop <orders@copper.example>"
        assert reference in message["Subject"]
        body = message.get_content()
        assert "1 x Copper kettle  $42.00" in body and "12 Marylebone Road" in body
        assert order_row(hold["reservationId"]).confirmation_sent_at is not None

        # The job again (a retry, a redelivery, the sweep): nothing more is sent.
        assert send_order_confirmation(hold["reservationId"]) == "already_sent"
        assert app.test_cli_runner().invoke(args=["sweep"]).exit_code == 0
        assert len(inbox.messages) == 1


def test_the_confirmation_links_to_the_order_in_any_browser_and_the_links_can_be_asked_for_again(
        make_app, settings, inbox):
    """Issue 42: orders lived in one browser; clear its data and they were gone."""
    app = make_app({**settings, "MAIL_URL": inbox.url})
    with app.app_context():
        client = app.test_client()
        client.get("/")  # a browser
        first = hold_for(client, make_product(total=1, name="Copper kettle", price=4200))
        assert pay_in_demo(client, first).status_code == 200
        second = hold_for(client, make_product(total=1, name="Tea tin", price=1450))
        assert pay_in_demo(client, second).status_code == 200
        link = re.search(r"http://localhost/orders/\S+", inbox.messages[0].get_content()).group(0)
        assert link.startswith(f"http://localhost/orders/{first['reservationId']}?key=")

        elsewhere = app.test_client()  # another browser, no cookie, no visitor id
        page = elsewhere.get(link.removeprefix("http://localhost"))
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "Copper kettle" in html and "12 Marylebone Road" in html
        path, key = link.removeprefix("http://localhost").split("?key=")
        assert elsewhere.get(f"{path}?key={'A' if key[0] != 'A' else 'B'}{key[1:]}").status_code == 404
        assert elsewhere.get(f"/orders/{second['reservationId']}?key={key}").status_code == 404  # another order's key

        reference = reference_of(uuid.UUID(second["reservationId"]))
        for email, typed in [("someone@example.com", reference), ("ada@example.com", "SF-AAAAAAAA")]:
            asked = elsewhere.post("/orders/find", data={"email": email, "reference": typed})
            assert asked.status_code == 202 and "on their way" in asked.get_data(as_text=True)
        assert len(inbox.messages) == 2  # the two confirmations: nothing matched, nothing sent
        asked = elsewhere.post("/orders/find", data={"email": "  ADA@example.com ", "reference": reference.lower()})
        assert asked.status_code == 202 and reference not in asked.get_data(as_text=True)  # shows nothing
        assert len(inbox.messages) == 3
        again = inbox.messages[2]
        assert again["To"] == "ada@example.com"
        body = again.get_content()
        assert body.count("http://localhost/orders/") == 2 and link in body  # every paid order of that email
        assert elsewhere.post("/orders/find", data={"email": "ada", "reference": reference}).status_code == 400


def test_a_mail_server_that_is_down_never_holds_up_the_payment_and_the_sweep_sends_later(make_app, settings):
    box = Inbox()  # its port is known, but nothing listens there yet
    app = make_app({**settings, "MAIL_URL": box.url})
    with app.app_context():
        client = app.test_client()
        hold = hold_for(client, make_product(total=1))
        started = time.monotonic()
        assert pay_in_demo(client, hold).status_code == 200
        assert time.monotonic() - started < 5
        status = client.get(f"/api/reservations/{hold['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
        assert status.get_json()["status"] == "COMPLETED"
        assert order_row(hold["reservationId"]).confirmation_sent_at is None

        box.controller.start()
        try:
            runner = app.test_cli_runner()
            runner.invoke(args=["sweep"])
            assert box.messages == []  # paid a moment ago: its own job may still be on the way
            db.session.execute(text("UPDATE orders SET paid_at = paid_at - interval '2 minutes'"))
            db.session.commit()
            assert runner.invoke(args=["sweep"]).exit_code == 0
            assert len(box.messages) == 1
            runner.invoke(args=["sweep"])
            assert len(box.messages) == 1
        finally:
            box.controller.stop()


def test_without_mail_url_the_email_is_written_to_the_log(shop, caplog):
    client = shop.test_client()
    hold = hold_for(client, make_product(total=1, name="Tea tin"))
    with caplog.at_level("INFO", logger="storefront.mail"):
        assert pay_in_demo(client, hold).status_code == 200
    logged = [record.getMessage() for record in caplog.records if record.name == "storefront.mail"]
    assert len(logged) == 1 and "MAIL_URL is unset" in logged[0]
    assert reference_of(uuid.UUID(hold["reservationId"])) in logged[0] and "To: ada@example.com" in logged[0]


def test_the_confirmation_job_runs_on_the_rq_worker(make_app, settings, redis_server, inbox, worker):
    mail_settings = {**settings, "REDIS_URL": redis_server.url, "MAIL_URL": inbox.url}
    app = make_app(mail_settings)
    with app.app_context():
        client = app.test_client()
        hold = hold_for(client, make_product(total=1))
        assert pay_in_demo(client, hold).status_code == 200  # settled on return; the email is enqueued
        assert inbox.messages == []
        running = worker(mail_settings, role="jobs")
        deadline = time.monotonic() + 30
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        running.stop()
        assert len(inbox.messages) == 1
        assert order_row(hold["reservationId"]).confirmation_sent_at is not None


@pytest.mark.parametrize(("value", "problem"), [
    ("http://mail.example:25", "MAIL_URL"), ("smtp://", "MAIL_URL"), ("smtp://host:notaport", "MAIL_URL"),
])
def test_a_malformed_mail_url_stops_start_up_naming_it(make_app, settings, value, problem):
    with pytest.raises(SystemExit, match=problem):
        make_app({**settings, "MAIL_URL": value})


def test_a_malformed_sender_stops_start_up_naming_it(make_app, settings):
    with pytest.raises(SystemExit, match="MAIL_FROM"):
        make_app({**settings, "MAIL_FROM": "not an address"})


def test_the_order_fragments_are_fragments_and_their_pages_are_shells(app, rendered):
    client = app.test_client()
    hold = hold_for(client, make_product(total=1))
    pay_in_demo(client, hold)
    rendered.clear()
    shopper = {**HTMX, "X-Visitor-Id": visitor(1)}
    for path, template in ((f"/orders/{hold['reservationId']}", "orders/_order.html"),
                           ("/orders", "orders/_orders.html")):
        fragment = client.get(path, headers=shopper)
        assert rendered[-1] == template
        assert "<html" not in fragment.get_data(as_text=True) and "HX-Request" in fragment.headers["Vary"]
        page = client.get(path)  # the page knows no visitor: it asks for the fragment with one
        assert rendered[-1] == template.replace("_", "", 1) and "<html" in page.get_data(as_text=True)
        assert "12 Marylebone Road" not in page.get_data(as_text=True)


def test_a_client_known_by_its_visitor_id_alone_sees_its_orders_without_personal_details(shop):
    """Identical phones share a visitor id: an email and an address go only to the browser that
    holds the secret, never to whoever names the visitor id."""
    script = shop.test_client()  # no cookie: an owner by its visitor id alone
    hold = hold_for(script, make_product(total=2, name="Copper kettle", price=4200))
    assert pay_in_demo(script, hold).status_code == 200
    assert order_row(hold["reservationId"]).email == "ada@example.com"  # kept for the operator

    by_id = {**HTMX, "X-Visitor-Id": visitor(1)}
    for url in (f"/orders/{hold['reservationId']}", "/orders"):
        page = script.get(url, headers=by_id)
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and reference_of(uuid.UUID(hold["reservationId"])) in html
        assert "ada@example.com" not in html and "Marylebone" not in html and "Lovelace" not in html
    listed = script.get("/api/orders", headers={"X-Visitor-Id": visitor(1)}).get_data(as_text=True)
    assert "Copper kettle" in listed and "ada@example.com" not in listed and "Marylebone" not in listed


def test_a_demo_order_says_no_money_was_taken_wherever_it_is_shown(make_app, settings, inbox):
    password = "the owner's own password"
    app = make_app({**settings, "MAIL_URL": inbox.url, "ADMIN_PASSWORD": password})
    admin = {"Authorization": "Basic " + __import__("base64").b64encode(f"admin:{password}".encode()).decode()}
    with app.app_context():
        client = app.test_client()
        client.get("/")
        hold = hold_for(client, make_product(total=1, name="Copper kettle", price=4200))
        assert pay_in_demo(client, hold).status_code == 200
        order_id = hold["reservationId"]

        page = client.get(f"/orders/{order_id}", headers={**HTMX, "X-Visitor-Id": visitor(1)}).get_data(as_text=True)
        assert "demo: no money taken" in page
        assert "demo: no money taken" in client.get("/orders", headers={**HTMX, "X-Visitor-Id": visitor(1)}).get_data(
            as_text=True)
        [message] = inbox.messages
        assert "demo: no money taken" in message["Subject"] and "demo: no money taken" in message.get_content()
        assert "demo: no money taken" in client.get("/admin/orders", headers=admin).get_data(as_text=True)
        csv_lines = client.get("/admin/orders.csv", headers=admin).get_data(as_text=True).splitlines()
        assert csv_lines[0].endswith(",payment")
        assert csv_lines[1].endswith(",demo: no money taken")


def test_an_order_paid_through_stripe_carries_no_demo_label(shop):
    client = shop.test_client()
    client.get("/")
    hold = hold_for(client, make_product(total=1, name="Lamp"))
    payload = intent_event(hold, intent_id="pi_3RealStripeLike0001")
    assert client.post("/api/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": stripe_signature(payload)}).status_code == 200
    page = client.get(f"/orders/{hold['reservationId']}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
    assert 'data-status="paid"' in page.get_data(as_text=True)
    assert "demo" not in page.get_data(as_text=True)


@pytest.mark.parametrize("trusted", [None, "shop.example"])
def test_an_orders_link_is_built_only_from_a_host_the_shop_answers_for(make_app, settings, inbox, trusted):
    """A Host header anyone can send must not put another site's link in the shop's email."""
    app = make_app({**settings, "MAIL_URL": inbox.url, **({"TRUSTED_HOSTS": trusted} if trusted else {})})
    with app.app_context():
        client = app.test_client()
        hold = client.post("/api/reservations", json={"productId": make_product(total=1).id, "userId": visitor(1)},
                           base_url="https://shop.example").get_json()
        paid = client.post(f"/reservations/{hold['reservationId']}/demo-payment", data=DELIVERY,
                           headers={**HTMX, "X-Visitor-Id": visitor(1)}, base_url="https://shop.example")
        assert paid.status_code == 200
        body = inbox.messages[0].get_content()
        if trusted:
            assert f"https://shop.example/orders/{hold['reservationId']}?key=" in body
        else:
            assert "/orders/" not in body and "in the browser you bought with" in body
