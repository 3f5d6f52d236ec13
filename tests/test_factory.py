"""create_app() and the settings it validates at start-up."""

import secrets

import pytest

from storefront import create_app
from storefront.config import Config, ConfigError


def test_embedded_defaults_use_sqlite_under_instance_and_keep_one_secret(tmp_path):
    instance = tmp_path / "instance"
    app = create_app({}, instance_path=str(instance))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'storefront.sqlite3'}"
    secret = app.config["SECRET_KEY"]
    assert len(secret) >= 32
    assert (instance / "secret_key").read_text().strip() == secret
    assert create_app({}, instance_path=str(instance)).config["SECRET_KEY"] == secret
    settings = app.config["STOREFRONT"]
    assert (settings.hold_ttl_seconds, settings.sweep_interval_seconds, settings.max_hold_quantity) == (600, 60, 5)
    assert settings.kafka_payments_topic == "storefront.payments"
    assert settings.redis_url is None and settings.kafka_bootstrap_servers == ()


def test_testing_is_off_by_default(tmp_path):
    assert not create_app({}, instance_path=str(tmp_path)).testing


def test_a_plain_postgresql_url_uses_psycopg_3(tmp_path):
    config = Config.from_env({"DATABASE_URL": "postgresql://u:p@db:5432/shop",
                              "SECRET_KEY": secrets.token_urlsafe(32), "DEMO_PAYMENTS": "1"}, tmp_path)
    assert config.database_url == "postgresql+psycopg://u:p@db:5432/shop"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"HOLD_TTL_SECONDS": "ten"}, "HOLD_TTL_SECONDS"),
        ({"HOLD_TTL_SECONDS": "0"}, "HOLD_TTL_SECONDS"),
        ({"SWEEP_INTERVAL_SECONDS": "1.5"}, "SWEEP_INTERVAL_SECONDS"),
        ({"MAX_HOLD_QUANTITY": "-1"}, "MAX_HOLD_QUANTITY"),
        ({"MAX_HELD_UNITS_PER_VISITOR": "lots"}, "MAX_HELD_UNITS_PER_VISITOR"),
        ({"HOLD_RATE_LIMIT": "thirty"}, "HOLD_RATE_LIMIT"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u@h/db", "SECRET_KEY": "s"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h/db"}, "SECRET_KEY"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://host:notaport/0"}, "REDIS_URL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"STRIPE_SECRET_KEY": "sk_test_abc"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_SECRET_KEY": "pk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_x"}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": "nope"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE"),
    ],
)
def test_a_malformed_setting_stops_start_up_with_one_line_naming_it(tmp_path, environ, variable):
    with pytest.raises(ConfigError, match=variable):
        Config.from_env(environ, tmp_path)
    with pytest.raises(SystemExit) as stopped:
        create_app(environ, instance_path=str(tmp_path))
    message = str(stopped.value)
    assert variable in message
    assert "\n" not in message


def test_secrets_never_appear_in_errors_or_reprs(tmp_path):
    secret = "sk_test_supersecretvalue123"
    with pytest.raises(ConfigError) as error:
        Config.from_env({"STRIPE_SECRET_KEY": secret}, tmp_path)
    assert secret not in str(error.value)
    config = Config.from_env(
        {"STRIPE_SECRET_KEY": secret, "STRIPE_WEBHOOK_SECRET": "whsec_hidden", "ADMIN_PASSWORD": "hunter22hunter22"}, tmp_path
    )
    assert secret not in repr(config) and "whsec_hidden" not in repr(config) and "hunter22hunter22" not in repr(config)
