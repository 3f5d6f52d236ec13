"""Safe by default: what a production start refuses, and the settings that keep strangers out
(TRUSTED_HOSTS, METRICS_TOKEN, HSTS and the admin's cookie over HTTPS)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from storefront.config import EXAMPLE_SECRET_KEYS, Config, ConfigError

REPO = Path(__file__).resolve().parent.parent
STRONG_KEY = secrets.token_urlsafe(32)  # drawn: a key written here would be an example
POSTGRES_URL = "postgresql://shop:pw@127.0.0.1:9/shop"  # never connected to: start-up stops first


def start_up(env: dict, *command: str) -> subprocess.CompletedProcess:
    """A process as an operator starts one (gunicorn imports wsgi; the worker runs worker.py),
    with only these settings."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run([sys.executable, *command], cwd=REPO, env={**keep, **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        # PostgreSQL and no Stripe key: the demo gateway would give orders away.
        ({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": STRONG_KEY}, ("STRIPE_SECRET_KEY", "DEMO_PAYMENTS")),
        ({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": STRONG_KEY, "DEMO_PAYMENTS": "1",
          "STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc"}, ("DEMO_PAYMENTS", "STRIPE_SECRET_KEY")),
        ({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": "short-but-not-empty", "DEMO_PAYMENTS": "1"}, ("SECRET_KEY",)),
        ({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": "local-compose-only-not-a-secret", "DEMO_PAYMENTS": "1"},
         ("SECRET_KEY",)),
        ({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": STRONG_KEY, "DEMO_PAYMENTS": "1", "ADMIN_PASSWORD": "hunter2"},
         ("ADMIN_PASSWORD",)),
        ({"ADMIN_PASSWORD": "x"}, ("ADMIN_PASSWORD",)),
        ({"DEMO_PAYMENTS": "yes"}, ("DEMO_PAYMENTS",)),
        ({"DEMO_PAYMENTS": "0"}, ("STRIPE_SECRET_KEY", "DEMO_PAYMENTS")),
        ({"TRUSTED_HOSTS": "shop.example.com, https://x/"}, ("TRUSTED_HOSTS",)),
        ({"MAX_HELD_UNITS_PER_ADDRESS": "many"}, ("MAX_HELD_UNITS_PER_ADDRESS",)),
    ],
)
def test_an_unsafe_start_stops_with_one_line_naming_the_setting(tmp_path, environ, named):
    with pytest.raises(ConfigError) as refused:
        Config.from_env(environ, tmp_path)
    assert all(name in str(refused.value) for name in named), refused.value


@pytest.mark.parametrize("command", [("-c", "import wsgi"), ("worker.py",)])
def test_the_web_and_the_worker_processes_refuse_a_production_start_without_stripe(tmp_path, command):
    started = start_up({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": STRONG_KEY}, *command)
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "STRIPE_SECRET_KEY" in lines[0] and "DEMO_PAYMENTS" in lines[0]
    assert STRONG_KEY not in started.stderr + started.stdout


def test_the_demo_gateway_is_the_embedded_default_and_a_stripe_key_replaces_it(tmp_path):
    assert Config.from_env({}, tmp_path).demo_payments is True
    with_stripe = Config.from_env({"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc"}, tmp_path)
    assert with_stripe.demo_payments is False
    on_purpose = Config.from_env({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": STRONG_KEY, "DEMO_PAYMENTS": "1"},
                                 tmp_path)
    assert on_purpose.demo_payments is True


def example_secret_keys() -> set[str]:
    """Every value the project's own files show for SECRET_KEY: compose defaults, shell and env lines."""
    found = set()
    files = [REPO / "compose.yaml", REPO / "README.md", REPO / "Dockerfile", *REPO.glob("docs/*.md"),
             *REPO.glob("scripts/*"), *REPO.glob("tests/*.py"), *REPO.glob("bench/*.py"), *REPO.glob("deploy/**/*")]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found.update(re.findall(r"(?<![A-Z_])SECRET_KEY:-([^}\s]+)\}", text))
        found.update(value for value in re.findall(r"(?<![A-Z_])SECRET_KEY[=:] *[\"']?([^\s\"'$`(){}]+)", text)
                     if value not in ("", "|"))
        # Python: "SECRET_KEY": "…", SECRET_KEY="…", SECRET_KEY = "…" (a test's or a bench's own key).
        found.update(re.findall(r"(?<![A-Z_])SECRET_KEY[\"']?\s*[:=]\s*[\"']([^\"']+)[\"']", text))
    return found - {"SECRET_KEY"}


def test_no_example_secret_key_from_the_projects_files_is_accepted(tmp_path):
    """Every key written in the repository, the tests' and the benches' included (they draw theirs at
    run time), is public and refused."""
    examples = example_secret_keys() | EXAMPLE_SECRET_KEYS
    assert "local-compose-only-not-a-secret" in examples  # the one compose.yaml once shipped
    assert "short-but-not-empty" in examples  # a test's own literal is found too
    for example in examples:
        with pytest.raises(ConfigError, match="SECRET_KEY"):
            Config.from_env({"DATABASE_URL": POSTGRES_URL, "SECRET_KEY": example, "DEMO_PAYMENTS": "1"}, tmp_path)


def test_compose_starts_nothing_without_a_secret_key_of_the_operators_own():
    text = (REPO / "compose.yaml").read_text()
    assert re.search(r"SECRET_KEY: \$\{SECRET_KEY:\?", text), "compose must require SECRET_KEY, not default it"
    assert "DEMO_PAYMENTS: ${DEMO_PAYMENTS:-0}" in text


def test_metrics_need_the_token_when_one_is_set(make_app, settings):
    client = make_app({**settings, "METRICS_TOKEN": "scrape-token-0123456789"}).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert answer.status_code == 200 and b"storefront_http_requests_total" in answer.data
    open_metrics = make_app(settings).test_client()
    assert open_metrics.get("/metrics").status_code == 200


def test_a_host_outside_trusted_hosts_is_400_before_anything_is_built_from_it(make_app, settings):
    client = make_app({**settings, "TRUSTED_HOSTS": "shop.example.com"}).test_client()
    assert client.get("/healthz", headers={"Host": "shop.example.com"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "shop.example.com:8443"}).status_code == 200
    refused = client.get("/", headers={"Host": "attacker.example"})
    assert refused.status_code == 400
    assert b"attacker.example" not in refused.data


def test_over_https_the_shop_sends_hsts_and_a_secure_lax_admin_cookie(make_app, settings):
    app = make_app({**settings, "TRUSTED_PROXY_COUNT": "1", "ADMIN_PASSWORD": "correct horse battery"})
    client = app.test_client()
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(b"admin:correct horse battery").decode()}

    plain = client.get("/admin/", headers=auth)
    assert plain.status_code == 200
    assert "Strict-Transport-Security" not in plain.headers
    cookie = plain.headers.get("Set-Cookie", "")
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie

    tls = app.test_client().get("/admin/", headers={**auth, "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"})
    assert tls.headers["Strict-Transport-Security"] == "max-age=31536000"
    cookie = tls.headers.get("Set-Cookie", "")
    assert "SameSite=Lax" in cookie and "Secure" in cookie
    assert client.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers["Strict-Transport-Security"]


def test_a_secret_key_needs_32_characters_exactly(tmp_path):
    base = {"DATABASE_URL": POSTGRES_URL, "DEMO_PAYMENTS": "1"}
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        Config.from_env({**base, "SECRET_KEY": secrets.token_hex(16)[:31]}, tmp_path)
    assert Config.from_env({**base, "SECRET_KEY": secrets.token_hex(16)}, tmp_path).secret_key
