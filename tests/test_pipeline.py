"""The event pipeline on real services: webhook → Kafka → consumer → RQ → completion job.

PostgreSQL, Redis and Apache Kafka are real servers started by the suite;
``python worker.py`` runs as its own process, and is stopped, killed and
restarted as an operator (or a crash) would.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kafka import KafkaConsumer
from redis import Redis
from sqlalchemy import func, select

from scripts.services import KafkaServer
from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.orders.models import Order
from storefront.payments.messages import sealed
from storefront.payments.models import PaymentEvent
from tests.factories import TEST_WEBHOOK_SECRET, intent_event, make_product, stripe_signature, visitor, units


@pytest.fixture
def pipeline_settings(settings, redis_server, kafka):
    """Settings for the full stack, with a topic of this test's own."""
    topic = f"payments-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic)
    Redis.from_url(redis_server.url).flushdb()
    return {
        **settings,
        "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
        "REDIS_URL": redis_server.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_PAYMENTS_TOPIC": topic,
        "SWEEP_INTERVAL_SECONDS": "60",
    }


@pytest.fixture
def shop(make_app, pipeline_settings):
    app = make_app(pipeline_settings)
    with app.app_context():
        yield app


def place_holds(client, product, visitors):
    holds = []
    for n in visitors:
        response = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(n)})
        assert response.status_code == 201
        holds.append(response.get_json())
    return holds


def deliver(url_or_client, payload: bytes):
    headers = {"Stripe-Signature": stripe_signature(payload), "Content-Type": "application/json"}
    if isinstance(url_or_client, str):
        return requests.post(f"{url_or_client}/api/webhooks/stripe", data=payload, headers=headers, timeout=30)
    return url_or_client.post("/api/webhooks/stripe", data=payload, headers=headers)


def statuses(product_id) -> dict:
    db.session.expire_all()
    rows = db.session.execute(select(Hold.status, func.count()).where(Hold.product_id == product_id)
                              .group_by(Hold.status)).all()
    return dict(rows)


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds}s: {what}")


def counters(product_id):
    db.session.expire_all()
    product = db.session.get(Product, product_id)
    return units(product.id).held, units(product.id).sold


def test_a_signed_payment_is_completed_through_kafka_and_rq(shop, pipeline_settings, worker):
    client = shop.test_client()
    product = make_product(total=2)
    [reservation] = place_holds(client, product, [1])
    running = worker(pipeline_settings)

    payload = intent_event(reservation, event_id="evt_pipeline_one")
    response = client.post("/api/webhooks/stripe", data=payload, headers={
        "Stripe-Signature": stripe_signature(payload), "X-Request-Id": "trace-pipeline-0001"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "trace-pipeline-0001"

    wait_until(lambda: statuses(product.id) == {"COMPLETED": 1}, 20, "the hold is COMPLETED")
    assert counters(product.id) == (0, 1)
    assert running.process.poll() is None
    started = time.monotonic()
    # SIGTERM: a clean, prompt shutdown. It once took 30 s and a SIGKILL in a fresh-clone run;
    # the worker's own log says where, should it happen again.
    assert running.stop() == 0, running.log_path.read_text()[-4000:]
    assert time.monotonic() - started < 20
    # One JSON line per record; the job's carries the webhook request's id across Kafka.
    lines = [json.loads(line) for line in running.log_path.read_text().splitlines() if line.startswith("{")]
    job_lines = [line for line in lines if line["logger"] == "storefront.payments.settlement"]
    assert [line["request_id"] for line in job_lines] == ["trace-pipeline-0001"]
    assert "completed" in job_lines[0]["message"]
    assert any(line["message"] == "worker stopped" for line in lines)

    # The message on the topic is the contract's: keyed by the reservation, versioned.
    consumer = KafkaConsumer(pipeline_settings["KAFKA_PAYMENTS_TOPIC"],
                             bootstrap_servers=pipeline_settings["KAFKA_BOOTSTRAP_SERVERS"],
                             group_id=f"inspect-{uuid.uuid4().hex}", auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    [record] = list(consumer)
    consumer.close()
    message = json.loads(record.value)
    assert record.key.decode() == reservation["reservationId"]
    assert {"schemaVersion", "eventId", "type", "paymentIntentId", "reservationId", "productId", "userId",
            "amount", "currency"} <= message.keys()
    assert (message["eventId"], message["type"], message["amount"]) == (
        "evt_pipeline_one", "payment_intent.succeeded", 2500)


def test_duplicates_and_200_events_at_once_complete_each_hold_exactly_once(
        shop, pipeline_settings, worker, live_server):
    client = shop.test_client()
    product = make_product(total=200)
    holds = place_holds(client, product, range(200))
    server = live_server(pipeline_settings, workers=2, threads=8)
    worker(pipeline_settings)

    originals = [intent_event(h, event_id=f"evt_many_{n}") for n, h in enumerate(holds)]
    # Redeliveries race their originals: the first event five times over and every tenth
    # one twice, side by side with it, so copies reach the web workers at the same moment.
    payloads = []
    for n, payload in enumerate(originals):
        payloads += [payload] * (5 if n == 0 else 2 if n % 10 == 0 else 1)
    senders = 32
    start = threading.Barrier(senders)

    def send(numbered):
        n, payload = numbered
        if n < senders:  # the first round leaves together
            start.wait(timeout=30)
        return deliver(server.url, payload).status_code

    with ThreadPoolExecutor(max_workers=senders) as pool:
        answers = list(pool.map(send, enumerate(payloads)))
    assert answers == [200] * len(payloads)

    wait_until(lambda: statuses(product.id) == {"COMPLETED": 200}, 60, "all 200 holds COMPLETED")
    # Every copy handed over and every job run, not just the first of each: then look at what a
    # second completion would have changed.
    wait_until(lambda: pipeline_drained(pipeline_settings, len(payloads)), 60, "the topic consumed and RQ idle")
    assert counters(product.id) == (0, 200)  # a unit sold twice would show as 201 or more
    per_hold = db.session.execute(select(PaymentEvent.reservation_id, func.count())
                                  .group_by(PaymentEvent.reservation_id)).all()
    assert len(per_hold) == 200 and {count for _, count in per_hold} == {1}
    paid_orders = db.session.execute(select(func.count()).select_from(Order).where(Order.paid_at.is_not(None)))
    assert paid_orders.scalar_one() == 200


def pipeline_drained(settings: dict, published: int) -> bool:
    """Every message on the test's topic consumed and committed, and RQ's queue and workers idle."""
    from rq import Queue
    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    from storefront.events.kafka import consumer_lag
    from storefront.jobs import QUEUE_NAME

    lag = consumer_lag((settings["KAFKA_BOOTSTRAP_SERVERS"],), settings["KAFKA_PAYMENTS_TOPIC"])
    consumed = sum(partition["committed"] for partition in lag.values())
    queue = Queue(QUEUE_NAME, connection=Redis.from_url(settings["REDIS_URL"]), serializer=JSONSerializer)
    return consumed == published and queue.count == 0 and StartedJobRegistry(queue=queue).count == 0


def test_with_kafka_down_webhooks_answer_503_and_redelivery_completes_them(
        make_app, pipeline_settings, worker, tmp_path):
    with KafkaServer() as broker:
        broker.create_topic("storefront.payments")
        settings = {**pipeline_settings, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                    "KAFKA_PAYMENTS_TOPIC": "storefront.payments"}
        app = make_app(settings)
        client = app.test_client()
        with app.app_context():
            product = make_product(total=3)
            holds = place_holds(client, product, [1, 2, 3])
            payloads = [intent_event(h) for h in holds]
            assert deliver(client, payloads[0]).status_code == 200  # the producer is connected

            broker.stop(keep_data=True)
            refused = [deliver(client, payload) for payload in payloads[1:]]
            assert [r.status_code for r in refused] == [503, 503]
            assert refused[0].get_json()["error"] == "unavailable"
            # Nothing changed: no worker runs yet, and a refused event is nowhere.
            assert statuses(product.id) == {"PENDING": 3}
            assert counters(product.id) == (3, 0)
            assert db.session.execute(select(func.count()).select_from(PaymentEvent)).scalar_one() == 0

            broker.start()
            running = worker(settings)
            for payload in payloads[1:]:  # Stripe delivers again
                wait_until(lambda p=payload: deliver(client, p).status_code == 200, 30, "Kafka is back")
            wait_until(lambda: statuses(product.id) == {"COMPLETED": 3}, 30, "all three COMPLETED")
            assert counters(product.id) == (0, 3)
            running.stop()


def test_a_worker_killed_mid_batch_leaves_no_paid_hold_pending(shop, pipeline_settings, worker):
    client = shop.test_client()
    total = 400
    product = make_product(total=total)
    holds = place_holds(client, product, range(total))
    for n, hold in enumerate(holds):
        assert deliver(client, intent_event(hold, event_id=f"evt_crash_{n}")).status_code == 200

    first = worker(pipeline_settings)
    wait_until(lambda: statuses(product.id).get("COMPLETED", 0) >= 10, 30, "the worker got going")
    first.kill()  # SIGKILL: no chance to finish its job, commit offsets or say goodbye
    completed_at_kill = statuses(product.id).get("COMPLETED", 0)
    assert completed_at_kill < total, "the kill came after the batch: nothing was tested"

    second = worker(pipeline_settings)
    # A job cut off mid-run is retried once its execution expires: the job timeout
    # plus 10 s, and the next maintenance round (jobs.py, worker.py).
    try:
        wait_until(lambda: statuses(product.id) == {"COMPLETED": total}, 180, "every paid hold COMPLETED")
    except AssertionError:
        print(explain_pending(product.id, shop), second.log_path.read_text()[-3000:])
        raise
    assert counters(product.id) == (0, total)


def explain_pending(product_id, app) -> str:
    """Where the jobs of still-PENDING holds are, for a failure message."""
    from rq.job import Job

    from storefront.jobs import job_runner

    pending = db.session.execute(select(Hold.id).where(Hold.product_id == product_id, Hold.status == "PENDING"))
    lines = []
    runner = job_runner()
    for (hold_id,) in pending:
        events = db.session.execute(select(PaymentEvent.id).where(PaymentEvent.reservation_id == str(hold_id)))
        jobs = [key.decode() for key in runner.connection.scan_iter("rq:job:payment-*")]
        lines.append(f"hold {hold_id} pending; events {[e for (e,) in events]}; {len(jobs)} payment jobs in Redis")
    for registry in ("started", "failed", "scheduled", "deferred"):
        from rq import registry as registries

        cls = {"started": registries.StartedJobRegistry, "failed": registries.FailedJobRegistry,
               "scheduled": registries.ScheduledJobRegistry, "deferred": registries.DeferredJobRegistry}[registry]
        ids = cls(queue=runner.queue).get_job_ids()
        lines.append(f"{registry}: {ids[:5]} ({len(ids)})")
        for job_id in ids[:3]:
            job = Job.fetch(job_id.split(":")[0], connection=runner.connection, serializer=runner.serializer)
            lines.append(f"  {job_id}: status {job.get_status()} retries_left {job.retries_left}")
    lines.append(f"queued: {len(runner.queue)}")
    return "\n".join(lines)


def test_the_sweep_expires_lapsed_holds_cancels_their_intents_and_frees_the_stock(
        make_app, pipeline_settings, worker, localstripe):
    settings = {
        **pipeline_settings,
        "HOLD_TTL_SECONDS": "2",
        "SWEEP_INTERVAL_SECONDS": "1",
        "STRIPE_SECRET_KEY": "sk_test_StorefrontSuite123",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_StorefrontSuite123",
        "STRIPE_API_BASE": localstripe.url,
        "DEMO_PAYMENTS": "0",
    }
    app = make_app(settings)
    client = app.test_client()
    with app.app_context():
        product = make_product(total=2)
        intents = []
        for n in (1, 2):
            html = client.post("/api/reservations", data={"productId": product.id, "userId": visitor(n)},
                               headers={"HX-Request": "true"}).get_data(as_text=True)
            reservation_id = html.split('id="hold-')[1].split('"')[0]
            intents.append(db.session.get(Hold, uuid.UUID(reservation_id)).payment_intent_id)
        assert all(intents)
        assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 0

        worker(settings)
        wait_until(lambda: statuses(product.id) == {"EXPIRED": 2}, 30, "both holds EXPIRED by the sweep")
        assert counters(product.id) == (0, 0)
        assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 2

        auth = {"Authorization": "Bearer sk_test_StorefrontSuite123"}

        def cancelled():
            return all(requests.get(f"{localstripe.url}/v1/payment_intents/{intent}", headers=auth,
                                    timeout=10).json()["status"] == "canceled" for intent in intents)

        wait_until(cancelled, 15, "both payment intents cancelled")


def test_failed_jobs_are_listed_with_their_reason_and_retried(make_app, pipeline_settings, localstripe):
    """A refund that cannot reach Stripe fails the job; an operator retries it once Stripe is back."""
    from rq import SimpleWorker

    from storefront.jobs import job_runner

    keys = {"STRIPE_SECRET_KEY": "sk_test_StorefrontSuite123", "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
            "DEMO_PAYMENTS": "0"}
    broken = make_app({**pipeline_settings, **keys, "STRIPE_API_BASE": "http://127.0.0.1:9"})
    mended = make_app({**pipeline_settings, **keys, "STRIPE_API_BASE": localstripe.url})

    with broken.app_context():
        product = make_product(total=0)
        hold = Hold(product_id=product.id, user_id=visitor(1), quantity=1, amount=2500, currency="usd",
                    status="CANCELLED", expires_at=__import__("storefront.clock").clock.utcnow())
        db.session.add(hold)
        db.session.commit()
        intent = requests.post(f"{localstripe.url}/v1/payment_intents", timeout=10,
                               headers={"Authorization": "Bearer sk_test_StorefrontSuite123"},
                               data={"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
                                     "confirm": "true"})
        intent_id = intent.json()["id"] if intent.ok else "pi_unknown"
        message = {"schemaVersion": 1, "eventId": "evt_refund_fails", "type": "payment_intent.succeeded",
                   "paymentIntentId": intent_id, "reservationId": str(hold.id), "productId": product.id,
                   "userId": visitor(1), "amount": 2500, "currency": "usd"}
        runner = job_runner()
        runner.queue.enqueue("storefront.payments.jobs.complete_payment", sealed(message),
                             job_id="payment-evt_refund_fails")
        SimpleWorker([runner.queue], connection=runner.connection, serializer=runner.serializer).work(burst=True)

        listed = broken.test_cli_runner().invoke(args=["jobs", "failed"])
        assert listed.exit_code == 0
        assert "payment-evt_refund_fails" in listed.output and "PaymentError" in listed.output
        assert "sk_test_" not in listed.output

    with mended.app_context():
        retried = mended.test_cli_runner().invoke(args=["jobs", "retry", "payment-evt_refund_fails"])
        assert retried.exit_code == 0, retried.output
        SimpleWorker([job_runner().queue], connection=job_runner().connection,
                     serializer=job_runner().serializer).work(burst=True)
        db.session.expire_all()
        refunded = db.session.get(Hold, hold.id)
        assert refunded.status == "REFUNDED" and refunded.refund_id
        assert mended.test_cli_runner().invoke(args=["jobs", "failed"]).output.strip() == "No failed jobs."


def test_readiness_names_what_is_down(make_app, settings, pipeline_settings):
    ready = make_app(pipeline_settings).test_client().get("/readyz")
    assert ready.status_code == 200
    down = make_app({**settings, "REDIS_URL": "redis://127.0.0.1:9/0",
                     "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}).test_client().get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["down"] == ["redis", "kafka"]


def test_the_worker_runs_json_jobs_and_refuses_a_pickled_one(make_app, settings, redis_server, worker, tmp_path):
    """Write access to Redis must not be code execution in the worker: jobs are JSON, and a
    pickled job (RQ's default) never runs, whatever function it names."""
    from rq import Queue
    from rq.job import Job, JobStatus

    from storefront.jobs import QUEUE_NAME, job_runner

    Redis.from_url(redis_server.url).flushdb()
    jobs_settings = {**settings, "REDIS_URL": redis_server.url}
    app = make_app(jobs_settings)
    pickled_mark, json_mark = tmp_path / "pickled-ran", tmp_path / "json-ran"
    with app.app_context():
        runner = job_runner()
        pickling = Queue(QUEUE_NAME, connection=runner.connection)  # RQ's default serializer: pickle
        pickled = pickling.enqueue("tests.jobs_probe.leave_a_mark", str(pickled_mark), job_id="pickled-job")
        runner.enqueue("tests.jobs_probe.leave_a_mark", str(json_mark), job_id="json-job")
        running = worker(jobs_settings, role="jobs")
        wait_until(json_mark.exists, 30, "the JSON job ran")
        time.sleep(1)  # the pickled job was taken first (FIFO); give its failure a moment to be recorded
        assert not pickled_mark.exists()
        assert runner.fetch_many(["json-job"])[0].get_status() == JobStatus.FINISHED
        assert Job.fetch(pickled.id, connection=runner.connection).get_status() != JobStatus.FINISHED
        assert running.process.poll() is None  # the worker lives on
        assert running.stop() == 0


def test_a_payment_message_not_sealed_by_the_webhook_settles_nothing(shop, pipeline_settings, worker):
    """Someone who can write to the topic sends a well-formed "payment": the worker refuses it,
    and settles the one the webhook made."""
    from kafka import KafkaProducer

    client = shop.test_client()
    product = make_product(total=2)
    forged_for, real = place_holds(client, product, [1, 2])
    running = worker(pipeline_settings)
    forged = {"schemaVersion": 1, "eventId": "evt_forged", "type": "payment_intent.succeeded",
              "paymentIntentId": "pi_forged", "reservationId": forged_for["reservationId"], "checkoutId": None,
              "reservationIds": [], "productId": product.id, "userId": visitor(1), "amount": forged_for["amount"],
              "currency": "usd", "seal": "0" * 64}
    producer = KafkaProducer(bootstrap_servers=pipeline_settings["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    producer.send(pipeline_settings["KAFKA_PAYMENTS_TOPIC"], key=forged["reservationId"].encode(),
                  value=json.dumps(forged).encode()).get(timeout=30)
    producer.close()
    payload = intent_event(real, event_id="evt_real_after_forged")
    assert client.post("/api/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": stripe_signature(payload)}).status_code == 200
    wait_until(lambda: statuses(product.id) == {"COMPLETED": 1, "PENDING": 1}, 30, "the real payment settled")
    wait_until(lambda: "evt_forged" in running.log_path.read_text(), 30, "the forged message was read")
    assert "not sealed" in running.log_path.read_text()
    db.session.expire_all()
    assert db.session.get(Hold, uuid.UUID(forged_for["reservationId"])).status == "PENDING"
    assert db.session.get(Hold, uuid.UUID(real["reservationId"])).status == "COMPLETED"
