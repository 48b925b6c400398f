"""The command line, the README and the operations guide agree with the code."""

import importlib
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from services.alerts.settings import AlertsSettings
from services.cli import app
from services.console.settings import ConsoleSettings
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings

README = (Path(__file__).parents[2] / "README.md").read_text()
runner = CliRunner()


def _setting_names() -> set[str]:
    classes = (IngestSettings, ScoringSettings, AlertsSettings, ConsoleSettings)
    return {f"VITALS_{name.upper()}" for cls in classes for name in cls.model_fields}


def test_the_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"^\| `(VITALS_[A-Z_]+)`", README, re.MULTILINE))
    assert documented == _setting_names()


def test_config_check_shows_settings_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALS_SCORING_DATABASE_URL", "postgresql+asyncpg://u:hunter2@db/vitals")
    monkeypatch.setenv("VITALS_ALERTS_WEBHOOK_URL", "https://hooks.example.com/T0/secret-path")

    result = runner.invoke(app, ["config", "check"])

    assert result.exit_code == 0, result.output
    assert "VITALS_SCORING_DATABASE_URL=postgresql+asyncpg://u:***@db/vitals" in result.output
    assert "VITALS_ALERTS_WEBHOOK_URL=****" in result.output
    assert "hunter2" not in result.output and "secret-path" not in result.output


def test_config_check_names_each_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALS_TOPIC_PARTITIONS", "many")
    monkeypatch.setenv("VITALS_ALERTS_HEALTH_THRESHOLD", "500")

    result = runner.invoke(app, ["config", "check"])

    assert result.exit_code == 1
    assert "VITALS_TOPIC_PARTITIONS: Input should be a valid integer" in result.output
    assert "VITALS_ALERTS_HEALTH_THRESHOLD: Input should be less than or equal to 100" in (
        result.output
    )


def test_serve_refuses_bad_settings_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALS_KAFKA_BOOTSTRAP_SERVERS", "no-port")

    result = runner.invoke(app, ["serve", "ingest"])

    assert result.exit_code == 2
    assert "VITALS_KAFKA_BOOTSTRAP_SERVERS: Value error, 'no-port' is not host:port" in (
        result.output
    )


OPERATIONS = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()


METRIC_MODULES = (
    "shared.metrics",
    "services.ingest.metrics",
    "services.scoring.metrics",
    "services.alerts.metrics",
    "services.console.metrics",
)


def _metric_names() -> set[str]:
    # Importing the modules registers every metric of the three services.
    for module in METRIC_MODULES:
        importlib.import_module(module)
    suffix = {"counter": "_total"}
    return {
        metric.name + suffix.get(metric.type, "")
        for metric in REGISTRY.collect()
        if metric.name.startswith("vitals_")
    }


def test_the_operations_guide_documents_every_metric() -> None:
    documented = set(re.findall(r"^\| `(vitals_[a-z0-9_]+)", OPERATIONS, re.MULTILINE))
    assert documented == _metric_names()


@pytest.mark.parametrize("factory", ["ingest_app", "scoring_app", "alerts_app"])
def test_each_worker_process_builds_its_app_from_the_environment(
    factory: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for service in ("INGEST", "SCORING", "ALERTS"):
        monkeypatch.setenv(f"VITALS_{service}_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")

    built = getattr(importlib.import_module("services.cli"), factory)()

    assert built.title == f"Vitals {factory.removesuffix('_app')}"
