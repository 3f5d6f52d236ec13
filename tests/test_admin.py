"""/admin: basic auth, CSRF on every change, stock, holds, failed jobs, consumer lag."""

import base64
import re

import pytest
from redis import Redis

from storefront.payments.messages import sealed
from tests.factories import DELIVERY, make_product, visitor

PASSWORD = "correct horse battery staple"


def basic(user="admin", password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def admin_app(make_app, settings):
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        yield app


def csrf_token(client) -> str:
    page = client.get("/admin/", headers=basic()).get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def test_admin_is_off_without_a_password(client):
    assert client.get("/admin/").status_code == 404


@pytest.mark.parametrize("headers", [{}, basic(password="wrong"), basic(user="root"),
                                     {"Authorization": "Bearer x"}])
def test_admin_asks_for_basic_auth(admin_app, headers):
    response = admin_app.test_client().get("/admin/", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert PASSWORD not in response.get_data(as_text=True)


def test_admin_shows_total_held_sold_and_available(admin_app):
    client = admin_app.test_client()
    product = make_product(total=5, name="Tracked lamp")
    client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1), "quantity": 2})
    page = client.get("/admin/", headers=basic()).get_data(as_text=True)
    row = re.search(rf'<tr id="product-row-{product.id}">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(\d+)</td>", row)
    assert "Tracked lamp" in row and cells == ["5", "2", "0", "3"]  # total, held, sold, available


def test_changing_stock_needs_the_csrf_token_and_refuses_going_below_committed(admin_app):
    client = admin_app.test_client()
    product = make_product(total=5)
    client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1), "quantity": 3})
    url = f"/admin/products/{product.id}/total"

    forged = client.post(url, data={"total": "50"}, headers=basic())
    assert forged.status_code == 400  # what a cross-site form riding the browser's credentials gets

    token = csrf_token(client)
    changed = client.post(url, data={"total": "50"}, headers={**basic(), "X-CSRFToken": token,
                                                              "HX-Request": "true"})
    assert changed.status_code == 200
    assert re.findall(r"<td>(\d+)</td>", changed.get_data(as_text=True)) == ["50", "3", "0", "47"]

    refused = client.post(url, data={"total": "2"}, headers={**basic(), "X-CSRFToken": token, "HX-Request": "true"})
    assert refused.status_code == 409
    assert "cannot go below 3" in refused.get_data(as_text=True)
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["total"] == 50


def test_holds_can_be_filtered_by_status_and_product(admin_app):
    client = admin_app.test_client()
    first, second = make_product(total=5), make_product(total=5)
    kept = client.post("/api/reservations", json={"productId": first.id, "userId": visitor(1)}).get_json()
    gone = client.post("/api/reservations", json={"productId": second.id, "userId": visitor(2)}).get_json()
    client.delete(f"/api/reservations/{gone['reservationId']}", headers={"X-Visitor-Id": visitor(2)})

    page = client.get("/admin/holds?status=CANCELLED", headers=basic()).get_data(as_text=True)
    assert gone["reservationId"] in page and kept["reservationId"] not in page
    page = client.get(f"/admin/holds?product={first.id}", headers=basic()).get_data(as_text=True)
    assert kept["reservationId"] in page and gone["reservationId"] not in page
    assert client.get("/admin/holds?status=NOPE", headers=basic()).status_code == 400


def test_failed_jobs_show_their_error_and_can_be_retried_or_discarded(make_app, settings, redis_server):
    from rq import Queue, SimpleWorker

    Redis.from_url(redis_server.url).flushdb()
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD, "REDIS_URL": redis_server.url})
    client = app.test_client()
    with app.app_context():
        from storefront.jobs import job_runner

        queue: Queue = job_runner().queue
        for job_id in ("broken-1", "broken-2"):
            # Sealed as the webhook seals, so the job gets as far as reading it, and fails there.
            queue.enqueue("storefront.payments.jobs.complete_payment", sealed({"not": "a message"}), job_id=job_id)
        SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)

        page = client.get("/admin/", headers=basic()).get_data(as_text=True)
        assert "broken-1" in page and "KeyError" in page
        token = csrf_token(client)
        headers = {**basic(), "X-CSRFToken": token, "HX-Request": "true"}
        retried = client.post("/admin/jobs/broken-1/retry", headers=headers).get_data(as_text=True)
        assert "broken-1" not in retried and "broken-2" in retried
        assert "broken-1" in queue.job_ids
        discarded = client.post("/admin/jobs/broken-2/discard", headers=headers).get_data(as_text=True)
        assert "broken-2" not in discarded
        assert client.post("/admin/jobs/nope/retry", headers=headers).status_code == 404


def test_the_consumer_lag_is_shown_per_partition(make_app, settings, kafka):
    from kafka import KafkaProducer

    kafka.create_topic("lag-check")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for n in range(6):
        producer.send("lag-check", key=str(n).encode(), value=b"{}")
    producer.flush()
    producer.close()
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                    "KAFKA_PAYMENTS_TOPIC": "lag-check"})
    with app.app_context():
        page = app.test_client().get("/admin/", headers=basic()).get_data(as_text=True)
    lags = [int(value) for value in re.findall(r"<td data-lag>(\d+)</td>", page)]
    assert len(lags) == 3 and sum(lags) == 6  # nobody has consumed anything yet


def test_payments_settled_without_their_webhook_and_refunds_are_listed_with_their_reason(admin_app):
    from tests.factories import intent_event, stripe_signature

    client = admin_app.test_client()
    product = make_product(total=2, price=2500)
    paid = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    wrong = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)}).get_json()
    # Paid through the demo gateway (the return path), and a payment of the wrong amount via the webhook.
    assert client.post(f"/reservations/{paid['reservationId']}/demo-payment", data=DELIVERY,
                       headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)}).status_code == 200
    payload = intent_event(wrong, amount=99, event_id="evt_wrong_amount")
    secret = admin_app.extensions["storefront.gateway"].webhook_secret
    assert client.post("/api/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": stripe_signature(payload, secret)}).status_code == 200

    page = client.get("/admin/payments", headers=basic())
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<h1>Payments</h1>" in html
    rows = re.findall(r'<tr data-outcome="([^"]+)" data-trigger="([^"]+)">', html)
    assert sorted(rows) == [("amount_mismatch", "webhook"), ("completed", "return")]
    assert "paid 99 usd, hold is 2500 usd" in html and "re_demo_" in html
    assert client.get("/admin/payments").status_code == 401


def test_the_eleventh_wrong_password_from_one_address_is_429_while_another_address_logs_in(admin_app):
    client = admin_app.test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.66"}
    assert client.get("/admin/", environ_base=guesser).status_code == 401  # no credentials: not a guess
    answers = [client.get("/admin/", headers=basic(password=f"guess-{n}"), environ_base=guesser).status_code
               for n in range(11)]
    assert answers == [401] * 10 + [429]
    throttled = client.get("/admin/", headers=basic(), environ_base=guesser)  # even the right one, now
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 800
    assert client.get("/admin/", headers=basic(), environ_base={"REMOTE_ADDR": "198.51.100.3"}).status_code == 200


def test_failed_logins_are_counted_across_processes_in_redis(make_app, settings, redis_server):
    Redis.from_url(redis_server.url).flushdb()
    shared = {**settings, "ADMIN_PASSWORD": PASSWORD, "REDIS_URL": redis_server.url}
    first, second = make_app(shared).test_client(), make_app(shared).test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.67"}
    for n in range(10):
        client = first if n % 2 else second
        assert client.get("/admin/", headers=basic(password=f"guess-{n}"), environ_base=guesser).status_code == 401
    assert first.get("/admin/", headers=basic(password="guess-x"), environ_base=guesser).status_code == 429
    assert second.get("/admin/", headers=basic(password="guess-y"), environ_base=guesser).status_code == 429
