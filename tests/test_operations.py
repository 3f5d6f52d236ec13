"""What operators see: metrics, request ids, logs without secrets."""

import logging
import os
import re
import signal
import time

import pytest
import requests

from storefront.logs import RequestContextFilter, redact, request_id_var
from tests.factories import DELIVERY, make_product, visitor


def metric(text: str, name: str, **labels) -> float:
    label_text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" ([0-9.e+]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_holds_and_webhook_events(client):
    product = make_product(total=1)
    before = client.get("/metrics").get_data(as_text=True)
    client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)})
    client.post("/api/reservations", json={"productId": product.id, "userId": visitor(2)})
    client.post("/api/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    response = client.get("/metrics")
    after = response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    for outcome in ("created", "out_of_stock"):
        assert metric(after, "storefront_holds_total", outcome=outcome) - metric(
            before, "storefront_holds_total", outcome=outcome) == 1
    def grew(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("storefront_http_requests_total", method="POST", route="/api/reservations", status="201") == 1
    assert grew("storefront_http_requests_total", method="POST", route="/api/reservations", status="409") == 1
    assert grew("storefront_webhook_events_total", type="unverified", result="refused") == 1
    assert "storefront_http_request_duration_seconds_bucket" in after


def test_metrics_add_up_across_gunicorn_workers(app, settings, live_server, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    product = make_product(total=100)
    server = live_server({**settings, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, workers=3, threads=2)

    def place_holds(numbers):
        for n in numbers:
            requests.post(f"{server.url}/api/reservations", json={"productId": product.id, "userId": visitor(n)},
                          headers={"Connection": "close"}, timeout=10).raise_for_status()

    # The kernel may hand every connection to one worker: so the workers that answered the
    # first fifteen are stopped (gunicorn starts others), and other processes answer the rest.
    place_holds(range(15))
    answered = [int(path.stem.split("_")[-1]) for path in folder.glob("counter_*.db")
                if holds_counted_in(path, tmp_path)]
    for pid in answered:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in answered) and time.monotonic() < deadline:
        time.sleep(0.1)
    place_holds(range(15, 30))
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    # Each worker's own count, read from its own file alone.
    counts = [holds_counted_in(path, tmp_path) for path in folder.glob("counter_*.db")]
    assert len([count for count in counts if count]) >= 2, f"one worker answered every hold: {counts}"
    # Whichever worker answered each hold, /metrics adds them up: all thirty.
    assert sum(counts) == 30 and metric(text, "storefront_holds_total", outcome="created") == 30


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def holds_counted_in(counter_file, scratch) -> float:
    """storefront_holds_total{outcome="created"} as one process's counter file alone says it."""
    import shutil

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    alone = scratch / f"alone-{counter_file.stem}-{time.monotonic_ns()}"
    alone.mkdir()
    shutil.copy(counter_file, alone / counter_file.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))
    return metric(generate_latest(registry).decode(), "storefront_holds_total", outcome="created")


def test_every_answer_carries_a_request_id(client):
    given = client.get("/healthz", headers={"X-Request-Id": "trace-abc-12345"})
    assert given.headers["X-Request-Id"] == "trace-abc-12345"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    ids = {client.get("/healthz").headers["X-Request-Id"] for _ in range(50)}
    assert len(ids) == 50  # a new one for every request


def test_secrets_card_numbers_and_client_secrets_are_scrubbed_from_logs():
    assert redact("key sk_live_51AbCdEf and whsec_xyz123") == "key sk_live_[redacted] and whsec_[redacted]"
    assert redact("secret pi_3Abc_secret_Zyx9") == "secret pi_3Abc_secret_[redacted]"
    assert redact("card 4242 4242 4242 4242 used") == "card [card number redacted] used"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling with %s", ("sk_test_abc",), None)
    token = request_id_var.set("trace-0000001")
    try:
        RequestContextFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert record.getMessage() == "calling with sk_test_[redacted]"
    assert record.request_id == "trace-0000001"


def test_web_logs_are_json_lines_with_the_request_id(app, settings, live_server):
    product = make_product(total=2)
    server = live_server(settings, workers=1, threads=2)
    held = requests.post(f"{server.url}/api/reservations", json={"productId": product.id, "userId": visitor(1)},
                         timeout=10).json()
    requests.post(f"{server.url}/reservations/{held['reservationId']}/demo-payment", data=DELIVERY, timeout=10, headers={
        "X-Request-Id": "trace-web-000001", "X-Visitor-Id": visitor(1), "HX-Request": "true"}).raise_for_status()
    import json

    deadline = time.monotonic() + 10  # gunicorn's workers write their logs a moment after answering
    while True:
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        paid = [line for line in lines if line["message"].startswith("payment ")]
        if paid or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert paid and paid[0]["request_id"] == "trace-web-000001"
    assert paid[0]["level"] == "INFO" and paid[0]["logger"] == "storefront.payments.settlement"


def test_two_shops_started_by_one_user_keep_out_of_each_others_way(app, settings, live_server, tmp_path):
    """gunicorn's default control socket is one path per user: ours is off, so neither master
    takes it over from the other or removes it when stopping."""
    home = tmp_path / "home"
    home.mkdir()
    first = live_server({**settings, "HOME": str(home)}, workers=1, threads=2)
    second = live_server({**settings, "HOME": str(home)}, workers=1, threads=2)
    second.stop()
    assert requests.get(f"{first.url}/healthz", timeout=10).json() == {"status": "ok"}
    assert not (home / ".gunicorn").exists()
    socket_path = tmp_path / "own.ctl"
    third = live_server({**settings, "HOME": str(home), "GUNICORN_CONTROL_SOCKET": str(socket_path)},
                        workers=1, threads=2)
    assert socket_path.exists()
    third.stop()
    assert requests.get(f"{first.url}/healthz", timeout=10).status_code == 200


def test_settlements_are_counted_by_trigger_and_outcome(client):
    product = make_product(total=1)
    before = client.get("/metrics").get_data(as_text=True)
    held = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}).get_json()
    client.post(f"/reservations/{held['reservationId']}/demo-payment", data=DELIVERY,
                headers={"HX-Request": "true", "X-Visitor-Id": visitor(1)})
    after = client.get("/metrics").get_data(as_text=True)
    assert metric(after, "storefront_settlements_total", trigger="return", outcome="completed") - metric(
        before, "storefront_settlements_total", trigger="return", outcome="completed") == 1


@pytest.mark.parametrize("name", ["GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_MAX_REQUESTS"])
def test_a_malformed_gunicorn_setting_stops_it_with_one_line_naming_it(name):
    import subprocess
    import sys
    from pathlib import Path

    started = subprocess.run([sys.executable, "-m", "gunicorn", "--check-config", "wsgi:app"],
                             cwd=Path(__file__).resolve().parent.parent, env={**os.environ, name: "abc"},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [f"gunicorn.conf.py: {name} must be a whole number, at least "
                                                   f"{0 if name == 'GUNICORN_MAX_REQUESTS' else 1}"]
