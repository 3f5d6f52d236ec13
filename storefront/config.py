"""Settings, read from the environment once and validated at start-up.

Every variable is optional: with none set the store runs on its embedded
defaults (a SQLite file under ``instance/``, in-process events and jobs, the
demo payment gateway). A variable that is present but malformed raises
:class:`ConfigError` with one line that names it.
"""

import os
import re
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


_RATE_LIMIT = re.compile(r"^\s*\d+\s*(/|per)\s*(second|minute|hour|day)s?\s*$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_HOST_NAME = re.compile(r"^(\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$|^\[[0-9A-Fa-f:.]+\]$")

MIN_SECRET_KEY_LENGTH = 32
MIN_ADMIN_PASSWORD_LENGTH = 12
# Values that stood as examples in the project's own files (compose.yaml, the README, docs):
# public, so never a secret. tests/test_security_settings.py finds every example in the
# repository and checks it is refused, so a new one cannot be added without landing here.
EXAMPLE_SECRET_KEYS = frozenset({
    "local-compose-only-not-a-secret",
    "change-me",
    "changeme",
    "replace-me-with-a-long-random-value-of-your-own",
})


# The integer settings: (Config's field, its variable, the lowest value allowed). Each default is the
# field's own; a value that is not a whole number at least that low stops start-up, naming it.
INTEGER_SETTINGS = (
    ("hold_ttl_seconds", "HOLD_TTL_SECONDS", 1),
    ("sweep_interval_seconds", "SWEEP_INTERVAL_SECONDS", 1),
    ("max_hold_quantity", "MAX_HOLD_QUANTITY", 1),
    ("max_held_units_per_visitor", "MAX_HELD_UNITS_PER_VISITOR", 1),
    ("max_held_units_per_address", "MAX_HELD_UNITS_PER_ADDRESS", 1),
    ("stock_poll_seconds", "STOCK_POLL_SECONDS", 1),
    ("queue_opens_before_seconds", "QUEUE_OPENS_BEFORE_SECONDS", 0),
    ("queue_pass_seconds", "QUEUE_PASS_SECONDS", 1),
    ("queue_entries_per_address", "QUEUE_ENTRIES_PER_ADDRESS", 1),
    ("queue_units_per_pass", "QUEUE_UNITS_PER_PASS", 1),
    ("ipv6_block_factor", "IPV6_BLOCK_FACTOR", 0),
    ("queue_proof_of_work", "QUEUE_PROOF_OF_WORK", 0),
    ("trusted_proxy_count", "TRUSTED_PROXY_COUNT", 0),
)


@dataclass(frozen=True)
class Config:
    database_url: str
    secret_key: str = field(repr=False)
    redis_url: str | None = None
    kafka_bootstrap_servers: tuple[str, ...] = ()
    kafka_payments_topic: str = "storefront.payments"
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    hold_ttl_seconds: int = 600
    sweep_interval_seconds: int = 60
    max_hold_quantity: int = 5
    max_held_units_per_visitor: int = 10
    max_held_units_per_address: int = 20
    hold_rate_limit: str = "30/minute"
    admin_password: str | None = field(default=None, repr=False)
    mail_url: str | None = field(default=None, repr=False)
    mail_from: str = "Storefront <shop@localhost>"
    stock_poll_seconds: int = 5
    queue_opens_before_seconds: int = 900
    queue_pass_seconds: int = 120
    queue_entries_per_address: int = 4
    queue_units_per_pass: int = 1
    ipv6_block_factor: int = 16  # every per-address limit, for an IPv6 /48 as a whole; 0: off
    queue_proof_of_work: int = 50_000  # ALTCHA's maxnumber; 0: no proof of work
    trusted_proxy_count: int = 0
    # True: the demo gateway takes "payments" (no money moves). Never together with Stripe.
    demo_payments: bool = False
    trusted_hosts: tuple[str, ...] = ()
    metrics_token: str | None = field(default=None, repr=False)
    shop_timezone: str = "UTC"  # the zone an owner types and reads times in (storefront/shop_zone.py)
    # "pgbouncer": DATABASE_URL reaches PostgreSQL through a pooler in transaction mode, which carries no
    # session from one transaction to the next: no statement is prepared on the server. None: directly.
    database_pooler: str | None = None

    @classmethod
    def from_env(cls, environ=None, instance_path: str | os.PathLike = "instance") -> "Config":
        env = os.environ if environ is None else environ

        def get(name):
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        database_url = _database_url(get("DATABASE_URL"), Path(instance_path))
        embedded = database_url.startswith("sqlite")

        secret_key = get("SECRET_KEY")
        if secret_key is None:
            if not embedded:
                raise ConfigError("SECRET_KEY is required when DATABASE_URL is not SQLite")
            secret_key = _embedded_secret_key(Path(instance_path))
        elif not embedded:
            _check_secret_key(secret_key)

        stripe_secret_key = get("STRIPE_SECRET_KEY")
        if stripe_secret_key and not stripe_secret_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ConfigError("STRIPE_SECRET_KEY must start with sk_test_ or sk_live_")
        stripe_publishable_key = get("STRIPE_PUBLISHABLE_KEY")
        if stripe_publishable_key and not stripe_publishable_key.startswith(("pk_test_", "pk_live_")):
            raise ConfigError("STRIPE_PUBLISHABLE_KEY must start with pk_test_ or pk_live_")
        stripe_webhook_secret = get("STRIPE_WEBHOOK_SECRET")
        if stripe_secret_key and not stripe_webhook_secret:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set")
        if stripe_webhook_secret and not stripe_webhook_secret.startswith("whsec_"):
            raise ConfigError("STRIPE_WEBHOOK_SECRET must start with whsec_")

        # Unset: on in embedded mode (SQLite), unless Stripe's key is there to take real payments.
        demo_payments = _flag(get("DEMO_PAYMENTS"), "DEMO_PAYMENTS", default=embedded and not stripe_secret_key)
        if demo_payments and stripe_secret_key:
            raise ConfigError("DEMO_PAYMENTS=1 and STRIPE_SECRET_KEY are both set: the demo gateway never runs beside "
                              "Stripe; unset DEMO_PAYMENTS")
        if not demo_payments and not stripe_secret_key:
            raise ConfigError("STRIPE_SECRET_KEY is not set and DEMO_PAYMENTS is not 1: set Stripe's keys to take "
                              "payments, or DEMO_PAYMENTS=1 to run the demo gateway (no money taken) on purpose")

        admin_password = get("ADMIN_PASSWORD")
        if admin_password is not None and len(admin_password) < MIN_ADMIN_PASSWORD_LENGTH:
            raise ConfigError(f"ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD_LENGTH} characters")

        hold_rate_limit = get("HOLD_RATE_LIMIT") or cls.hold_rate_limit
        if not _RATE_LIMIT.match(hold_rate_limit):
            raise ConfigError("HOLD_RATE_LIMIT must look like 30/minute")

        mail_url = _url(get("MAIL_URL"), "MAIL_URL", ("smtp", "smtps"))
        if mail_url and not urlsplit(mail_url).hostname:
            raise ConfigError("MAIL_URL must name a host: smtp://host:25")
        mail_from = get("MAIL_FROM") or cls.mail_from
        if "@" not in parseaddr(mail_from)[1]:
            raise ConfigError("MAIL_FROM must be an address, like Storefront <shop@example.com>")

        return cls(
            database_url=database_url,
            secret_key=secret_key,
            redis_url=_url(get("REDIS_URL"), "REDIS_URL", ("redis", "rediss", "unix")),
            kafka_bootstrap_servers=_bootstrap_servers(get("KAFKA_BOOTSTRAP_SERVERS")),
            kafka_payments_topic=get("KAFKA_PAYMENTS_TOPIC") or cls.kafka_payments_topic,
            stripe_secret_key=stripe_secret_key,
            stripe_publishable_key=stripe_publishable_key,
            stripe_webhook_secret=stripe_webhook_secret,
            stripe_api_base=_url(get("STRIPE_API_BASE"), "STRIPE_API_BASE", ("http", "https")),
            hold_rate_limit=hold_rate_limit,
            admin_password=admin_password,
            mail_url=mail_url,
            mail_from=mail_from,
            **{name: _positive_int(get(variable), variable, getattr(cls, name), low=low)
               for name, variable, low in INTEGER_SETTINGS},
            demo_payments=demo_payments,
            trusted_hosts=_trusted_hosts(get("TRUSTED_HOSTS")),
            metrics_token=get("METRICS_TOKEN"),
            shop_timezone=_time_zone(get("SHOP_TIMEZONE"), cls.shop_timezone),
            database_pooler=_pooler(get("DATABASE_POOLER"), embedded),
        )

    def flask_settings(self) -> dict:
        """The Flask and extension keys this configuration implies."""
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url, self.database_pooler),
            # A hold body is a few hundred bytes; anything near this is abuse.
            "MAX_CONTENT_LENGTH": 64 * 1024,
            # Flask answers 400 to a Host it does not serve (None: any), before a URL is built from it.
            "TRUSTED_HOSTS": list(self.trusted_hosts) or None,
            # The admin's session (its CSRF token): never sent along with another site's request.
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_HTTPONLY": True,
            "STOREFRONT": self,
        }


def _database_url(value: str | None, instance_path: Path) -> str:
    if value is None:
        instance_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(instance_path / 'storefront.sqlite3').resolve()}"
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError("DATABASE_URL does not parse as a database URL") from None
    if url.get_backend_name() == "postgresql":
        # psycopg 3 is the one driver we ship; accept the plain scheme too.
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return value
    raise ConfigError("DATABASE_URL must be a postgresql:// or sqlite:// URL")


def threads_per_process() -> int:
    """The threads of a web process that may each use the database at once: gunicorn's
    GUNICORN_THREADS (gunicorn.conf.py reads the same variable, and checks it), 4 without it."""
    value = os.environ.get("GUNICORN_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 4


POOLERS = ("pgbouncer",)


def _pooler(value: str | None, embedded: bool) -> str | None:
    if value is None:
        return None
    if value.lower() not in POOLERS:
        raise ConfigError(f"DATABASE_POOLER must be one of {', '.join(POOLERS)}, or unset")
    if embedded:
        raise ConfigError("DATABASE_POOLER is for PostgreSQL: DATABASE_URL is SQLite")
    return value.lower()


def connect_args(pooler: str | None) -> dict:
    """psycopg's connection arguments. Behind a pooler in transaction mode (PgBouncer before 1.21,
    Debian's 1.18 among them) no statement may be prepared on the server: the next transaction
    of this connection may run on another server connection, where the name is unknown or another
    client's (DuplicatePreparedStatement). ``prepare_threshold=None`` turns off psycopg's own
    preparing of a statement run five times; the hot paths ask for none (database.PREPARED)."""
    args = {"connect_timeout": 5}
    if pooler:
        args["prepare_threshold"] = None
    return args


def _engine_options(database_url: str, pooler: str | None = None) -> dict:
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    # No pre-ping: it costs a round trip on every request. A connection broken by a
    # database restart fails one request, and SQLAlchemy then renews the whole pool.
    # As many kept as a web process has threads (each may hold one during its request), and ten more.
    return {"pool_recycle": 300, "pool_size": max(5, threads_per_process()), "max_overflow": 10,
            "connect_args": connect_args(pooler)}


def _embedded_secret_key(instance_path: Path) -> str:
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        # O_EXCL: two processes starting at once agree on one key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return key_file.read_text().strip()


def _check_secret_key(secret_key: str) -> None:
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters "
                          "(python -c \"import secrets; print(secrets.token_urlsafe(48))\")")
    if secret_key.lower() in EXAMPLE_SECRET_KEYS:
        raise ConfigError("SECRET_KEY is an example value from the project's own files: set a random one of your own")


def _time_zone(value: str | None, default: str) -> str:
    """An IANA zone name (Europe/Paris, America/New_York, UTC), checked against the zone database."""
    if value is None:
        return default
    try:
        return ZoneInfo(value).key
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("SHOP_TIMEZONE must be a time zone name such as Europe/Paris or America/New_York") from None


def _flag(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    if value not in ("0", "1"):
        raise ConfigError(f"{name} must be 0 or 1")
    return value == "1"


def _trusted_hosts(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    hosts = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if not hosts or not all(_HOST_NAME.match(host) for host in hosts):
        raise ConfigError("TRUSTED_HOSTS must be host names separated by commas: shop.example.com,www.example.com")
    return hosts


def _positive_int(value: str | None, name: str, default: int, low: int = 1) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if number < low:
        raise ConfigError(f"{name} must be at least {low}")
    return number


def _url(value: str | None, name: str, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{name} does not parse as a URL") from None
    if parts.scheme not in schemes or not (parts.netloc or parts.scheme == "unix"):
        raise ConfigError(f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL")
    return value


def _bootstrap_servers(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    servers = tuple(part.strip() for part in value.split(",") if part.strip())
    if not servers or not all(_HOST_PORT.match(server) for server in servers):
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port]")
    return servers
