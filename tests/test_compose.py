"""compose.yaml cannot run here (no Docker), so it is read against the scripts that
start the same services on this machine, and against the settings the app reads."""

import re
import secrets
from pathlib import Path

import yaml

from storefront.config import Config

REPO = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), comments and continuations handled: what
    docker build reads, so a word in a comment never passes for a COPY."""
    instructions, pending = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            instruction, _, arguments = pending.partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
            pending = ""
    return instructions


def test_compose_has_every_role_and_runs_what_the_scripts_run():
    services = compose()["services"]
    assert {"postgres", "redis", "kafka", "migrate", "web", "worker", "stripe-cli"} <= services.keys()
    assert services["migrate"]["command"] == ["flask", "--app", "storefront", "db", "upgrade"]
    assert services["web"]["command"][:2] == ["gunicorn", "wsgi:app"]
    copied = {source for instruction, arguments in dockerfile_instructions() if instruction == "COPY"
              for source in arguments.split()[:-1]}
    for needed in ("pyproject.toml", "storefront", "gunicorn.conf.py", "wsgi.py", "worker.py", "templates", "static",
                   "migrations"):
        assert needed in copied, f"the image lacks {needed}"
    runs = " && ".join(arguments for instruction, arguments in dockerfile_instructions() if instruction == "RUN")
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["stripe-cli"]["profiles"] == ["stripe"]
    # Uploaded photos outlive the container, in the instance folder the app reads them from.
    assert "uploads:/app/instance/uploads" in services["web"]["volumes"]
    assert "mkdir -p instance/uploads" in runs
    assert "web:8000/api/webhooks/stripe" in services["stripe-cli"]["command"]


def test_compose_kafka_is_the_version_and_mode_the_scripts_start():
    pom = (REPO / "scripts" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>(.+)</kafka.version>", pom).group(1)
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{version}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    services_script = (REPO / "scripts" / "services.py").read_text()
    assert "auto.create.topics.enable=false" in services_script
    assert "process.roles=broker,controller" in services_script


def test_compose_serves_through_nginx_with_the_config_the_scripts_start():
    services = compose()["services"]
    nginx = services["nginx"]
    assert nginx["ports"] == ["8000:8000"] and "ports" not in services["web"]
    mounted = nginx["volumes"][0].split(":")
    assert mounted[0] == "./deploy/nginx/storefront.conf.template" and mounted[1].startswith("/etc/nginx/templates/")
    template = (REPO / "deploy" / "nginx" / "storefront.conf.template").read_text()
    named = set(re.findall(r"\$\{(\w+)\}", template)) - {"..."}
    assert named == set(nginx["environment"]), "compose fills in every variable the template names"
    assert nginx["environment"]["STOREFRONT_UPSTREAM"] == "web:8000"
    assert "NginxServer" in (REPO / "scripts" / "stack.py").read_text()
    assert "deploy\" / \"nginx\" / \"storefront.conf.template" in (REPO / "scripts" / "services.py").read_text()
    assert compose()["x-storefront-env"]["TRUSTED_PROXY_COUNT"] == "1"


def test_compose_redis_keeps_an_append_only_file_like_the_scripts():
    assert "--appendonly" in compose()["services"]["redis"]["command"]
    assert '"--appendonly", "yes"' in (REPO / "scripts" / "services.py").read_text()


def test_compose_settings_are_ones_the_app_reads(tmp_path):
    environment = dict(compose()["x-storefront-env"])
    names = {name.upper() for name in Config.__dataclass_fields__} | {"DATABASE_URL", "SECRET_KEY"}
    assert set(environment) <= names
    resolved = {key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for key, value in environment.items()}
    # What an operator must give (compose refuses to start without them): a key of their own,
    # and the demo gateway asked for by name when there are no Stripe keys.
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    resolved.update(SECRET_KEY=secrets.token_urlsafe(32), DEMO_PAYMENTS="1")
    config = Config.from_env(resolved, tmp_path)
    assert config.database_url.startswith("postgresql+psycopg://")
    assert config.kafka_bootstrap_servers == ("kafka:9092",)
    assert config.redis_url == "redis://redis:6379/0"


def test_the_stripe_cli_can_print_the_webhook_secret_before_the_app_that_needs_it_exists(tmp_path):
    """The documented order: the CLI prints STRIPE_WEBHOOK_SECRET on its own, then the stack starts."""
    import pytest

    from storefront.config import ConfigError

    cli = compose()["services"]["stripe-cli"]
    assert "depends_on" not in cli, "the CLI must start without the app, which cannot start without its secret"
    assert cli["environment"]["STRIPE_API_KEY"] == "${STRIPE_SECRET_KEY:-}"
    # Without the secret the app refuses to start: the reason the CLI comes first.
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        Config.from_env({"STRIPE_SECRET_KEY": "sk_test_x", "DATABASE_URL": "sqlite:///x.db"}, tmp_path)
    steps = ["docker compose run --rm stripe-cli listen --print-secret", "docker compose --profile stripe up"]
    for document in ((REPO / "compose.yaml").read_text(), (REPO / "README.md").read_text()):
        found = [document.find(step) for step in steps]
        assert -1 not in found and found == sorted(found), "the Stripe steps are missing or out of order"


def test_the_image_and_the_test_tools_install_the_locked_versions_with_their_hashes():
    import tomllib

    runs = " && ".join(arguments for instruction, arguments in dockerfile_instructions() if instruction == "RUN")
    assert "pip install --require-hashes -r requirements/app.lock" in runs
    assert "pip install --no-deps -e ." in runs
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    assert "lock=requirements/dev.lock" in bootstrap and 'pip install --progress-bar off --require-hashes -r "$lock"' in bootstrap
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
                for requirement in requirements}

    def locked(lock: str) -> dict[str, str]:
        text = (REPO / "requirements" / lock).read_text()
        assert all("--hash=sha256:" in block for block in re.split(r"\n(?=\S)", text.strip()) if "==" in block)
        return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.M))

    # A dependency added to pyproject.toml without the locks made again would install nothing.
    assert names(project["dependencies"]) <= locked("app.lock").keys()
    assert names(project["dependencies"] + project["optional-dependencies"]["dev"]) <= locked("dev.lock").keys()


def test_compose_runs_many_hosts_on_one_database_through_pgbouncer_as_the_scripts_do():
    services = compose()["services"]
    shared = compose()["x-storefront-env"]
    assert shared["DATABASE_POOLER"] == "pgbouncer" and "@pgbouncer:6432/" in shared["DATABASE_URL"]
    assert services["web"]["deploy"]["replicas"] >= 2 and services["worker"]["deploy"]["replicas"] >= 2
    assert services["web"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    # The migration goes straight to PostgreSQL (one long transaction of its own).
    assert "@postgres:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
    # PgBouncer: the template the scripts fill in, every variable given by compose or its Dockerfile.
    template = (REPO / "deploy" / "pgbouncer" / "pgbouncer.ini.template").read_text()
    assert "pool_mode = transaction" in template
    dockerfile = (REPO / "deploy" / "pgbouncer" / "Dockerfile").read_text()
    given = set(services["pgbouncer"]["environment"]) | set(re.findall(r"(PGBOUNCER_\w+)=", dockerfile))
    assert set(re.findall(r"\$\{(\w+)\}", template)) <= given
    assert services["pgbouncer"]["build"] == "deploy/pgbouncer" and "apt-get install" in dockerfile
    assert "PGBOUNCER_TEMPLATE" in (REPO / "scripts" / "services.py").read_text()
    stack = (REPO / "scripts" / "stack.py").read_text()
    assert "PgBouncerServer" in stack and '"DATABASE_POOLER": "pgbouncer"' in stack and "WEB_HOSTS" in stack
