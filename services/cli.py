"""The ``vitals`` command: serve a service, migrate its database, check settings."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from services.alerts.settings import AlertsSettings
from services.console.settings import ConsoleSettings
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings
from shared.auth import Scope, entry_yaml, generate_key, parse_rate
from shared.db import redact_url
from shared.events import event_json_schema
from shared.logging import configure_logging
from shared.metrics import shared_by_workers
from shared.migrations import MigrationSet, upgrade_database
from shared.serving import ServerOptions, ServerOptionsError, server_options
from shared.settings import VitalsSettings

if TYPE_CHECKING:
    from services.backtest.run import TopicRange

app = typer.Typer(help="Vitals: customer-health scoring.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


class Service(StrEnum):
    ingest = "ingest"
    scoring = "scoring"
    alerts = "alerts"
    console = "console"


WITH_DATABASE = (Service.ingest, Service.scoring, Service.alerts)
DEFAULT_PORTS = {
    Service.ingest: 8001,
    Service.scoring: 8002,
    Service.alerts: 8003,
    Service.console: 8004,
}
SETTINGS: dict[Service, type[VitalsSettings]] = {
    Service.ingest: IngestSettings,
    Service.scoring: ScoringSettings,
    Service.alerts: AlertsSettings,
    Service.console: ConsoleSettings,
}


@app.command()
def serve(
    service: Service,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port; 8001-8004 by default.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes sharing the port (replicas on one host).")
    ] = 1,
) -> None:
    """Run one service (its API and its Kafka worker) until interrupted."""
    port = port or DEFAULT_PORTS[service]
    # Bad settings are refused once, before any process starts. The server options
    # (which proxies may name the client) come from the settings, for every worker.
    settings = _load_settings(service)
    options = _server_options(service, settings)
    if workers == 1:
        app = _app_for(service, settings)
        uvicorn.run(app, host=host, port=port, log_config=None, **options)
        return
    factory = f"services.cli:{service.value}_app"
    with shared_by_workers():
        uvicorn.run(
            factory,
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_config=None,
            **options,
        )


def _server_options(service: Service, settings: VitalsSettings) -> ServerOptions:
    try:
        return server_options(settings)
    except ServerOptionsError as exc:
        typer.echo(f"[{service.value}] {exc}", err=True)
        raise typer.Exit(2) from None


def _service_app(service: Service) -> FastAPI:
    return _app_for(service, _load_settings(service))


def _app_for(service: Service, settings: VitalsSettings) -> FastAPI:
    configure_logging(settings.log_level, service.value)
    if isinstance(settings, IngestSettings):
        from services.ingest.app import create_app as create_ingest

        return create_ingest(settings)
    if isinstance(settings, ScoringSettings):
        from services.scoring.app import create_app as create_scoring

        return create_scoring(settings)
    if isinstance(settings, ConsoleSettings):
        from services.console.app import create_app as create_console

        return create_console(settings)
    from services.alerts.app import create_app as create_alerts

    assert isinstance(settings, AlertsSettings)
    return create_alerts(settings)


# The factories `serve --workers N` gives uvicorn: each worker process builds its app.
def ingest_app() -> FastAPI:
    return _service_app(Service.ingest)


def scoring_app() -> FastAPI:
    return _service_app(Service.scoring)


def alerts_app() -> FastAPI:
    return _service_app(Service.alerts)


def console_app() -> FastAPI:
    return _service_app(Service.console)


@app.command()
def migrate(
    service: Annotated[Service | None, typer.Argument(help="Only this service.")] = None,
) -> None:
    """Bring the databases of ingest, scoring and alerts to their newest schema."""
    if service is not None and service not in WITH_DATABASE:
        typer.echo(f"{service.value} has no database", err=True)
        raise typer.Exit(2)
    targets = [service] if service else list(WITH_DATABASE)
    for target in targets:
        url, migrations = _database(target)
        asyncio.run(upgrade_database(url, migrations))
        typer.echo(f"{target.value}: {redact_url(url)} is at {migrations.head()}")


def _database(service: Service) -> tuple[str, MigrationSet]:
    if service is Service.ingest:
        from services.ingest.app import MIGRATIONS as INGEST

        return IngestSettings().ingest_database_url, INGEST
    if service is Service.scoring:
        from services.scoring.app import MIGRATIONS as SCORING

        return ScoringSettings().scoring_database_url, SCORING
    from services.alerts.app import MIGRATIONS as ALERTS

    return AlertsSettings().alerts_database_url, ALERTS


def _load_settings(service: Service) -> VitalsSettings:
    """The service's settings from the environment; on errors, name each variable and exit."""
    try:
        return SETTINGS[service]()
    except ValidationError as exc:
        typer.echo(f"[{service.value}] invalid settings:", err=True)
        for error in exc.errors(include_url=False):
            name = "VITALS_" + "_".join(str(p) for p in error["loc"]).upper()
            typer.echo(f"  {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check() -> None:
    """Validate every service's settings from the environment and show them, secrets masked."""
    failed = False
    for service in Service:
        try:
            settings = _load_settings(service)
        except typer.Exit:
            failed = True
            continue
        typer.echo(f"[{service.value}] ok")
        for name, value in settings.model_dump().items():
            typer.echo(f"  VITALS_{name.upper()}={_shown(name, value)}")
    if failed:
        raise typer.Exit(1)


def _shown(name: str, value: object) -> str:
    if value is None:
        return ""
    if name.endswith("database_url"):
        return redact_url(str(value))
    if name.endswith("_key") or any(
        word in name for word in ("secret", "password", "token", "webhook_url")
    ):
        return "****"
    if isinstance(value, list):  # as the variable is written: comma-separated
        return ",".join(str(item) for item in value)
    return str(value)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the normalised event (docs/event-schema.json)."""
    typer.echo(json.dumps(event_json_schema(), indent=2, sort_keys=True))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. telemetry-pipeline.")],
    scope: Annotated[list[Scope], typer.Option(help="What the key may do; repeat for several.")],
    rate: Annotated[str | None, typer.Option(help="Its own rate limit, e.g. '500/second'.")] = None,
) -> None:
    """Make a new API key: print it once, and the entry to add to the keys file."""
    if rate is not None:
        try:
            parse_rate(rate)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--rate") from None
    key, entry = generate_key(name, set(scope), rate)
    typer.echo(f"API key (shown once, store it now): {key}", err=True)
    typer.echo("Add to the `keys:` list of the file VITALS_API_KEYS_FILE names:", err=True)
    typer.echo(entry_yaml(entry), nl=False)


@app.command()
def backtest(
    events: Annotated[
        list[Path] | None, typer.Option("--events", help="JSONL of native events.")
    ] = None,
    segment: Annotated[
        list[Path] | None, typer.Option("--segment", help="JSONL of Segment calls.")
    ] = None,
    stripe: Annotated[
        list[Path] | None, typer.Option("--stripe", help="JSONL of Stripe Event objects.")
    ] = None,
    kafka_topic: Annotated[
        str | None, typer.Option(help="A topic of normalised events (e.g. vitals.events).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="With --kafka-topic: from this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="With --kafka-topic: until before this time (UTC).")
    ] = None,
    scorecard: Annotated[
        list[Path] | None,
        typer.Option(
            "--scorecard", help="A scorecard file or folder; repeat to compare. Default: shipped."
        ),
    ] = None,
    outcomes: Annotated[
        Path | None,
        typer.Option(help="CSV account_id,churned_on[,kind]; default: cancellations in billing."),
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Alert rules YAML; default: the shipped rules.")
    ] = None,
    overrides: Annotated[
        list[Path] | None,
        typer.Option(
            "--overrides", help="YAML or JSON of CSM band/tier overrides, each with set_at."
        ),
    ] = None,
    silences: Annotated[
        list[Path] | None,
        typer.Option("--silences", help="YAML or JSON of alert silences, each with starts_at."),
    ] = None,
    daily: Annotated[
        Path | None, typer.Option(help="Write one JSON line per account per day.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the report as JSON.")] = None,
    chart: Annotated[
        Path | None, typer.Option(help="Write the report as a chart (.png, .svg).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Replay history through ingest's mapping and scoring, and report how each scorecard
    would have warned of the accounts that cancelled (docs/backtest.md)."""
    from rich.console import Console

    from services.alerts.documents import ConfigError
    from services.alerts.rules.ruleset import DEFAULT_RULES_FILE
    from services.backtest import run, show
    from services.backtest.kafka_source import KafkaSourceError
    from services.scoring.scorecard import ScorecardError

    inputs = run.Inputs(events or [], segment or [], stripe or [])
    try:
        inputs.kafka = _topic_range(kafka_topic, since, until)
        models = run.load_models(scorecard or [])
        known = run.read_outcomes(outcomes) if outcomes else None
        actions = None
        if overrides or silences:
            from services.backtest.actions import load_actions

            actions = load_actions(overrides or [], silences or [])
        result = run.backtest(
            inputs,
            models,
            run.Outputs(daily, report, chart),
            known,
            rules or DEFAULT_RULES_FILE,
            progress=progress,
            actions=actions,
        )
    except (run.BacktestError, ScorecardError, ConfigError, KafkaSourceError) as exc:
        typer.echo(f"backtest: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console()
    console.print(show.table(result))
    rejected = ", ".join(f"{n:,} {r}" for r, n in sorted(result.intake.rejected.items()))
    console.print(
        f"{result.intake.lines:,} lines, {result.intake.events:,} events in "
        f"{result.seconds:.1f} s ({result.events_per_minute:,.0f} events/min); "
        f"not used: {rejected or 'none'}"
    )


def _topic_range(
    topic: str | None, since: datetime | None, until: datetime | None
) -> TopicRange | None:
    from services.backtest.run import BacktestError, TopicRange

    if topic is None:
        if since or until:
            raise BacktestError("--since and --until go with --kafka-topic")
        return None
    if since is None or until is None:
        raise BacktestError("--kafka-topic needs --since and --until")
    since, until = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    if until <= since:
        raise BacktestError("--until must be after --since")
    return TopicRange(topic, since, until)
