"""Each service's OpenAPI document makes a client that ``openapi-python-client`` can
generate, that imports, and whose operations work against the running service (real
Kafka and PostgreSQL): named as a person would type them (``postEvents`` ->
``post_events``), with the API key, admin token or session their document states.

The four clients are generated once per session, from the documents the apps build.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI

from services.alerts.app import MIGRATIONS as ALERTS_MIGRATIONS
from services.alerts.app import create_app as create_alerts_app
from services.alerts.settings import AlertsSettings
from services.console.app import create_app as create_console_app
from services.console.settings import ConsoleSettings
from services.ingest.app import create_app as create_ingest_app
from services.ingest.settings import IngestSettings
from services.scoring.app import create_app as create_scoring_app
from services.scoring.settings import ScoringSettings
from shared.auth import Scope
from shared.events import Event
from tests.support.alerts_messages import TEST_RULES
from tests.support.apps import alerts_settings
from tests.support.auth import make_keys_file
from tests.support.clock import FakeClock
from tests.support.infra import migrated_to
from tests.support.ingest_apps import ingest_test_settings, migrated
from tests.support.kafka import consume
from tests.support.scoring_builders import V1_SCORECARD
from tests.support.scoring_service import settings_for, stored_account
from tests.support.servers import is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
SERVICES = ("ingest", "scoring", "alerts", "console")
ADMIN_TOKEN = "clients-admin-token-0123456789abcdef"


def _documents() -> dict[str, dict[str, Any]]:
    """The documents the apps serve at /openapi.json (building an app connects to nothing)."""
    apps: dict[str, FastAPI] = {
        "ingest": create_ingest_app(IngestSettings(environment="test")),
        "scoring": create_scoring_app(
            ScoringSettings(environment="test", scoring_scorecards_path=V1_SCORECARD)
        ),
        "alerts": create_alerts_app(
            AlertsSettings(environment="test", alerts_rules_file=TEST_RULES)
        ),
        "console": create_console_app(
            ConsoleSettings(
                environment="test",
                console_scoring_url="http://127.0.0.1:9",
                console_alerts_url="http://127.0.0.1:9",
            )
        ),
    }
    return {name: app.openapi() for name, app in apps.items()}


@pytest.fixture(scope="session")
def documents() -> dict[str, dict[str, Any]]:
    return _documents()


@pytest.fixture(scope="session")
def clients(
    tmp_path_factory: pytest.TempPathFactory, documents: dict[str, dict[str, Any]]
) -> Iterator[dict[str, str]]:
    """service -> the package name of its generated client, importable meanwhile."""
    root = tmp_path_factory.mktemp("openapi-clients")
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    packages = {service: f"vitals_{service}_client" for service in documents}
    generating = {}
    for service, document in documents.items():
        path = root / f"{service}.json"
        path.write_text(json.dumps(document))
        command = [str(GENERATOR), "generate", "--path", str(path), "--meta", "none"]
        command += ["--output-path", str(root / packages[service]), "--config", str(config)]
        generating[service] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    for service, process in generating.items():
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, f"{service}: {output}"
        assert "Warning" not in output, f"{service}: {output}"
    sys.path.insert(0, str(root))
    try:
        yield packages
    finally:
        sys.path.remove(str(root))


def _module(clients: dict[str, str], service: str, name: str) -> ModuleType:
    return importlib.import_module(f"{clients[service]}.{name}")


def test_every_generated_client_imports_whole(clients: dict[str, str]) -> None:
    imported = []
    for service in SERVICES:
        package = importlib.import_module(clients[service])
        api = Path(package.__file__ or "").parent / "api"
        for module in sorted(api.rglob("*.py")):
            name = ".".join(module.relative_to(api.parent).with_suffix("").parts)
            imported.append(importlib.import_module(f"{clients[service]}.{name}"))
    assert len(imported) > 40


def test_operation_ids_are_unique_camel_case_and_secured_as_the_apps_check(
    documents: dict[str, dict[str, Any]],
) -> None:
    for service, document in documents.items():
        operations = [op for item in document["paths"].values() for op in item.values()]
        ids = [op["operationId"] for op in operations]
        assert len(ids) == len(set(ids)), service
        assert all(i.isidentifier() and "_" not in i and i[0].islower() for i in ids), ids
        schemes = set(document["components"].get("securitySchemes", {}))
        for op in operations:
            for requirement in op.get("security", []):
                assert set(requirement) <= schemes, (service, op["operationId"])

    def security(service: str, path: str, method: str) -> list[str]:
        operation = documents[service]["paths"][path][method]
        return [name for requirement in operation.get("security", []) for name in requirement]

    assert documents["scoring"]["paths"]["/v1/accounts"]["get"]["operationId"] == "listAccounts"
    assert documents["scoring"]["paths"]["/v1/accounts/{account_id}"]["get"]["operationId"] == (
        "getAccount"
    )
    assert documents["ingest"]["paths"]["/v1/events"]["post"]["operationId"] == "postEvents"
    assert security("scoring", "/v1/accounts", "get") == ["bearer", "apiKeyHeader", "basic"]
    assert security("alerts", "/v1/alerts", "get") == ["bearer", "apiKeyHeader", "basic"]
    assert security("alerts", "/v1/silences", "post") == ["adminToken"]
    assert security("console", "/accounts", "get") == ["session"]
    assert security("ingest", "/v1/stripe/webhook", "post") == []  # signed instead
    assert security("scoring", "/healthz", "get") == []


async def test_the_ingest_client_posts_an_event(
    clients: dict[str, str], kafka: str, topics: dict[str, str], database: str, tmp_path: Path
) -> None:
    keys_file, keys = make_keys_file(tmp_path, {"pipeline": [Scope.ingest]})
    client_module = _module(clients, "ingest", "client")
    post_events = _module(clients, "ingest", "api.events.post_events")
    event_in = _module(clients, "ingest", "models").EventIn
    settings = ingest_test_settings(
        kafka=kafka, topics=topics, database=await migrated(database), api_keys_file=keys_file
    )
    event = {
        "event_id": "client-1",
        "account_id": "acme",
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": "2026-11-22T10:00:00Z",
    }
    async with serve(create_ingest_app(settings)) as url:
        client = client_module.AuthenticatedClient(base_url=url, token=keys["pipeline"])
        async with client:
            http = client.get_async_httpx_client()
            await wait_for(lambda: is_ready(http), 30, "ingest to be ready")
            answer = await post_events.asyncio_detailed(
                client=client, body=event_in.from_dict(event)
            )

    assert answer.status_code == 202, answer.content
    assert answer.parsed.event_ids == ["client-1"]
    stored = Event.from_bytes((await consume(kafka, topics["events_topic"], 1))[0].value)
    assert (stored.event_id, stored.account_id) == ("client-1", "acme")


async def test_the_scoring_and_console_clients_read_an_account(
    clients: dict[str, str], kafka: str, topics: dict[str, str], scoring_db: str, tmp_path: Path
) -> None:
    keys_file, keys = make_keys_file(tmp_path, {"kim": [Scope.read, Scope.act]})
    clock = FakeClock()
    await stored_account(scoring_db, "acme", clock.now)
    scoring_client = _module(clients, "scoring", "client")
    get_account = _module(clients, "scoring", "api.accounts.get_account")
    console_client = _module(clients, "console", "client")
    sign_in = _module(clients, "console", "api.default.sign_in")
    accounts = _module(clients, "console", "api.default.accounts")
    sign_in_body = _module(clients, "console", "models").BodySignIn
    scoring_app = create_scoring_app(
        settings_for(kafka, scoring_db, topics, api_keys_file=keys_file), clock
    )
    async with serve(scoring_app) as scoring_url:
        console_app = create_console_app(
            ConsoleSettings(
                environment="test",
                console_scoring_url=scoring_url,
                console_alerts_url=scoring_url,
            )
        )
        async with (
            scoring_client.AuthenticatedClient(base_url=scoring_url, token=keys["kim"]) as api,
            serve(console_app) as console_url,
        ):
            account = await get_account.asyncio_detailed("acme", client=api)
            async with console_client.Client(base_url=console_url) as anonymous:
                body = sign_in_body.from_dict({"name": "Kim", "key": keys["kim"]})
                signed = await sign_in.asyncio_detailed(client=anonymous, body=body)
            cookie = signed.headers.get("set-cookie", "").split(";")[0]
            name, _, value = cookie.partition("=")
            async with console_client.Client(base_url=console_url, cookies={name: value}) as kim:
                page = await accounts.asyncio_detailed(client=kim)

    assert account.status_code == 200, account.content
    assert account.parsed.account_id == "acme"
    assert (signed.status_code, name) == (303, "vitals_session"), signed.content
    assert page.status_code == 200, page.content
    assert b"acme" in page.content


async def test_the_alerts_client_lists_alerts_and_silences(
    clients: dict[str, str], kafka: str, topics: dict[str, str], database: str, tmp_path: Path
) -> None:
    keys_file, keys = make_keys_file(tmp_path, {"kim": [Scope.read]})
    await migrated_to(database, ALERTS_MIGRATIONS)
    client_module = _module(clients, "alerts", "client")
    list_alerts = _module(clients, "alerts", "api.alerts.list_alerts")
    list_silences = _module(clients, "alerts", "api.admin.list_silences")
    settings = alerts_settings(
        kafka=kafka,
        database=database,
        topics=topics,
        api_keys_file=keys_file,
        alerts_admin_token=ADMIN_TOKEN,
    )
    async with serve(create_alerts_app(settings)) as url:
        async with client_module.AuthenticatedClient(base_url=url, token=keys["kim"]) as kim:
            alerts = await list_alerts.asyncio_detailed(client=kim)
            refused = await list_silences.asyncio_detailed(client=kim)
        async with client_module.AuthenticatedClient(base_url=url, token=ADMIN_TOKEN) as admin:
            silences = await list_silences.asyncio_detailed(client=admin)

    assert alerts.status_code == 200, alerts.content
    assert alerts.parsed.alerts == []
    assert refused.status_code == 401
    assert silences.status_code == 200, silences.content
    assert silences.parsed.silences == []
