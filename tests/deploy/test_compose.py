"""deploy/compose without containers: the compose file, resolved the way compose resolves
it against a secrets file from make-env.sh, sets only real settings on each Vitals
service and its settings load from that environment; ports, scrape targets and the
Grafana provisioning agree with `vitals serve` and with each other; every dependency
exists and can be waited for."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from services.cli import DEFAULT_PORTS, SETTINGS, WITH_DATABASE, Service
from shared.settings import VitalsSettings
from tests.deploy.promql import ROOT

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
MAKE_ENV = COMPOSE_DIR / "make-env.sh"
PROMETHEUS_CONFIG = COMPOSE_DIR / "prometheus.yml"
GRAFANA_PROVISIONING = COMPOSE_DIR / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "vitals.rules.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
KAFKA_POM = ROOT / "deploy" / "local" / "kafka" / "pom.xml"
VITALS_IMAGE = "vitals:latest"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, $$
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?])"
    r"(?P<argument>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """text with its variables substituted as compose does; a variable without a default
    must be set (compose would quietly put an empty string)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        operator, argument = match["operator"], match["argument"]
        value = env.get(name)
        missing = value is None or (value == "" and operator in (":-", ":?"))
        if operator in (":-", "-"):
            return argument if missing else str(value)
        if missing:
            raise MissingVariable(f"{name}: {argument or 'not set and no default'}")
        return str(value)

    return VARIABLE.sub(substitute, text)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


@pytest.fixture(scope="module")
def dotenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A secrets file as deploy/compose/make-env.sh writes it."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    subprocess.run([str(MAKE_ENV), str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def secrets(dotenv: Path) -> dict[str, str]:
    return read_env_file(dotenv)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = resolve(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    return loaded


@pytest.fixture(scope="module")
def compose(secrets: dict[str, str]) -> dict[str, Any]:
    return load_compose(secrets)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def vitals_services(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((name, spec) for name, spec in services.items() if spec.get("image") == VITALS_IMAGE)


def served(spec: dict[str, Any]) -> Service | None:
    """The service a Vitals container serves, None for one-shot commands."""
    command = spec["command"]
    return Service(command[1]) if command[0] == "serve" else None


def settings_of(spec: dict[str, Any]) -> tuple[type[VitalsSettings], ...]:
    """The settings classes a Vitals container reads: its service's, or for `vitals
    migrate` those of every service with a database."""
    service = served(spec)
    if service is not None:
        return (SETTINGS[service],)
    assert spec["command"] == ["migrate"], spec["command"]
    return tuple(SETTINGS[service] for service in WITH_DATABASE)


def fields_as_variables(settings: type[VitalsSettings]) -> set[str]:
    return {f"VITALS_{name.upper()}" for name in settings.model_fields}


def unknown_variables(
    environment: Mapping[str, str], settings: tuple[type[VitalsSettings], ...]
) -> set[str]:
    known = set().union(*(fields_as_variables(cls) for cls in settings))
    return set(environment) - known


def mount(spec: dict[str, Any], source: Path) -> str:
    """The container path where a service mounts source (a file or folder of the repository)."""
    volumes: list[str] = spec.get("volumes", [])
    for volume in volumes:
        host, _, rest = volume.partition(":")
        if host.startswith((".", "/")) and (COMPOSE_DIR / host).resolve() == source.resolve():
            return rest.split(":")[0]
    raise AssertionError(f"{source} is not mounted")


def test_the_file_is_a_compose_spec_file(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert compose["name"] == "vitals"
    assert set(compose["volumes"]) >= {
        volume.partition(":")[0]
        for spec in compose["services"].values()
        for volume in spec.get("volumes", [])
        if not volume.startswith((".", "/"))
    }


def test_every_vitals_service_uses_the_one_image(services: dict[str, dict[str, Any]]) -> None:
    names = [name for name, _ in vitals_services(services)]
    assert set(names) >= {"migrate", "ingest", "scoring", "alerts", "alerts-dispatch", "console"}
    for name in names:
        build = services[name]["build"]
        assert (COMPOSE_DIR / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]) == ROOT / "deploy" / "image" / "Containerfile", name


def test_a_misspelt_setting_is_found() -> None:
    environment = {"VITALS_SCORING_INSTANCE_ID": "a", "VITALS_SCORING_INSTANCE": "b"}
    assert unknown_variables(environment, (SETTINGS[Service.scoring],)) == {
        "VITALS_SCORING_INSTANCE"
    }


def test_vitals_services_set_only_fields_of_their_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in vitals_services(services):
        environment = spec["environment"]
        assert unknown_variables(environment, settings_of(spec)) == set(), name


@pytest.mark.parametrize("environment", ["development", "production"])
def test_vitals_settings_load_from_the_compose_environment(
    secrets: dict[str, str], environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # production: what the secrets from make-env.sh must satisfy (lengths, Fernet keys)
    services = load_compose({**secrets, "VITALS_ENVIRONMENT": environment})["services"]
    checked = 0
    for _, spec in vitals_services(services):
        for variable in [name for name in os.environ if name.startswith("VITALS_")]:
            monkeypatch.delenv(variable)
        for variable, value in spec["environment"].items():
            monkeypatch.setenv(variable, str(value))
        for settings in settings_of(spec):
            assert settings().environment == environment
            checked += 1
    assert checked >= 8


def test_database_urls_name_the_databases_postgres_creates(
    services: dict[str, dict[str, Any]], secrets: dict[str, str]
) -> None:
    created = {
        match
        for script in (COMPOSE_DIR / "postgres-init").glob("*.sql")
        for match in re.findall(r"CREATE DATABASE (\w+);", script.read_text())
    }
    postgres = services["postgres"]["environment"]
    urls = {
        value
        for _, spec in vitals_services(services)
        for variable, value in spec["environment"].items()
        if variable.endswith("_DATABASE_URL")
    }
    used = set()
    for text in urls:
        url = make_url(text)
        assert url.drivername == "postgresql+asyncpg"
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password) == (
            postgres["POSTGRES_USER"],
            secrets["POSTGRES_PASSWORD"],
        )
        used.add(url.database)
    assert used == created == {"vitals_ingest", "vitals_scoring", "vitals_alerts"}


def test_secrets_come_from_the_env_file_and_are_required() -> None:
    example = read_env_file(ENV_EXAMPLE)
    required = {name for name, value in example.items() if value == ""}
    text = COMPOSE_FILE.read_text()
    assert required >= {"POSTGRES_PASSWORD", "VITALS_ALERTS_SECRETS_KEY"}
    for name in required:
        assert re.search(rf"\$\{{{name}:\?", text), f"{name} is not required by the compose file"
        assert not re.search(rf"\$\{{{name}(:?-|\}})", text), (
            f"{name} has a default or may be empty"
        )
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        load_compose({})


def test_make_env_writes_every_secret_once(
    tmp_path: Path, secrets: dict[str, str], dotenv: Path
) -> None:
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    example = read_env_file(ENV_EXAMPLE)
    assert set(secrets) == set(example)
    for name in example:
        assert secrets[name], name
    for name in ("VITALS_ALERTS_SECRETS_KEY", "VITALS_CONSOLE_SESSION_KEY"):
        Fernet(secrets[name])  # raises unless a valid key
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secrets["POSTGRES_PASSWORD"])
    assert len(secrets["VITALS_ALERTS_ADMIN_TOKEN"]) >= 24
    # never over an existing file: it holds the key of the sealed channel secrets
    before = dotenv.read_bytes()
    again = subprocess.run(
        [str(MAKE_ENV), str(dotenv)], capture_output=True, text=True, check=False
    )
    assert again.returncode != 0 and "exists" in again.stderr
    assert dotenv.read_bytes() == before
    other = tmp_path / ".env"
    subprocess.run([str(MAKE_ENV), str(other)], check=True, capture_output=True)
    assert read_env_file(other)["POSTGRES_PASSWORD"] != secrets["POSTGRES_PASSWORD"]


def test_ports_are_those_of_vitals_serve_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    published: list[str] = []
    for name, spec in services.items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
            published.append(str(port).split(":")[1])
    assert len(published) == len(set(published)), published
    for name, spec in vitals_services(services):
        service = served(spec)
        if service is None:
            assert "ports" not in spec, name
            continue
        command = spec["command"]
        # Listening on the container's loopback would make it unreachable.
        assert command[command.index("--host") + 1] == "0.0.0.0", name
        assert "--port" not in command, name
        port = DEFAULT_PORTS[service]
        assert spec.get("ports", [f"127.0.0.1:{port}:{port}"]) == [f"127.0.0.1:{port}:{port}"], name
    published_services = {served(spec) for _, spec in vitals_services(services) if "ports" in spec}
    assert published_services == set(Service)


def test_dependencies_exist_and_can_be_waited_for(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for target, wait in spec.get("depends_on", {}).items():
            assert target in services, f"{name} depends on {target}, which does not exist"
            condition = wait["condition"]
            if condition == "service_completed_successfully":
                assert services[target]["restart"] == "no", f"{target} is not a one-shot"
            elif condition == "service_healthy":
                check = services[target].get("healthcheck", {})
                image_check = services[target].get("image") == VITALS_IMAGE
                assert (check.get("test") or image_check) and not check.get("disable"), target
            else:
                assert condition == "service_started", condition
    for name, spec in vitals_services(services):
        if served(spec) in WITH_DATABASE:
            wait = spec["depends_on"]["migrate"]["condition"]
            assert wait == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_kafka_is_the_version_run_locally(services: dict[str, dict[str, Any]]) -> None:
    version = re.search(r"<kafka.version>(.+)</kafka.version>", KAFKA_POM.read_text())
    assert version is not None
    assert services["kafka"]["image"] == f"docker.io/apache/kafka:{version[1]}"
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for name, spec in vitals_services(services):
        bootstrap = spec["environment"].get("VITALS_KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is not None:
            assert f"PLAINTEXT://{bootstrap}" in advertised, name


def test_prometheus_scrapes_every_vitals_service(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {
        job["job_name"]: {target for group in job["static_configs"] for target in group["targets"]}
        for job in config["scrape_configs"]
    }
    expected: dict[str, set[str]] = {f"vitals-{service.value}": set() for service in Service}
    for name, spec in vitals_services(services):
        service = served(spec)
        if service is not None:
            expected[f"vitals-{service.value}"].add(f"{name}:{DEFAULT_PORTS[service]}")
    assert {job: jobs.get(job) for job in expected} == expected
    prometheus = services["prometheus"]
    assert f"--config.file={mount(prometheus, PROMETHEUS_CONFIG)}" in prometheus["command"]
    assert RULES.is_file()
    entrypoint = "\n".join(prometheus["entrypoint"])
    assert f"{mount(prometheus, RULES)} >{config['rule_files'][0]}" in entrypoint
    assert len(config["rule_files"]) == 1


def _prometheus_start(services: dict[str, dict[str, Any]], tmp_path: Path) -> list[str]:
    """The prometheus container's entrypoint, run here: its rules read from the
    repository and written into ``tmp_path``, and ``echo`` for Prometheus."""
    prometheus = services["prometheus"]
    shell, flag, script, _ = prometheus["entrypoint"]
    script = script.replace(mount(prometheus, RULES), str(RULES))
    script = script.replace("/tmp/vitals-rules", str(tmp_path))
    return [shell, flag, script, "echo"]


@pytest.mark.parametrize(
    ("base", "runbook"),
    [
        ("https://docs.acme.test/vitals/", "https://docs.acme.test/vitals/alert-runbook.md#"),
        ("https://docs.acme.test/vitals", "https://docs.acme.test/vitals/alert-runbook.md#"),
        ("", None),
    ],
)
def test_prometheus_gets_the_rules_with_the_runbook_base_url_set(
    services: dict[str, dict[str, Any]],
    promtool: str,
    tmp_path: Path,
    base: str,
    runbook: str | None,
) -> None:
    env = {**os.environ, "VITALS_RUNBOOK_BASE_URL": base}
    started = subprocess.run(
        [*_prometheus_start(services, tmp_path), "--config.file=x"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "--config.file=x"  # Prometheus gets its arguments
    written = tmp_path / "vitals.rules.yml"
    alerts = [
        rule
        for group in yaml.safe_load(written.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert alerts
    for alert in alerts:
        assert alert["annotations"].get("runbook_url") == (
            None if runbook is None else runbook + alert["alert"].lower()
        )
    checked = subprocess.run(
        [promtool, "check", "rules", str(written)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_provisions_prometheus_and_the_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    assert mount(grafana, GRAFANA_PROVISIONING) == "/etc/grafana/provisioning"
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "vitals.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == mount(grafana, DASHBOARDS)
    assert list(DASHBOARDS.glob("*.json"))
