"""Bad input gets a clear 4xx in the Problem shape from the scoring and alerts APIs, on
a real PostgreSQL; the key is checked first; keys never travel in URLs or logs; a
database that does not answer is named without its driver's words.

The apps are called in-process, without their lifespan (no consumer is needed to
answer a request), except where uvicorn's access log is the point.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from services.alerts.app import MIGRATIONS as ALERTS_MIGRATIONS
from services.alerts.app import create_app as create_alerts_app
from services.scoring.app import MIGRATIONS as SCORING_MIGRATIONS
from services.scoring.app import create_app as create_scoring_app
from shared.auth import Scope
from tests.support.apps import alerts_settings
from tests.support.auth import make_keys_file
from tests.support.clock import FakeClock
from tests.support.infra import migrated_to
from tests.support.scoring_service import settings_for, stored_account
from tests.support.servers import serve

pytestmark = [pytest.mark.postgres]

ADMIN_TOKEN = "errors-admin-token-0123456789abcdef"
ACCOUNT = "team/acme"
# Seen in a driver's message when the database is missing, never in an answer.
MARKER = "vitals_no_such_db_marker"


@dataclass
class Api:
    client: httpx.AsyncClient
    key: str

    @property
    def keyed(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def _keys(tmp_path: Path) -> tuple[Path, str]:
    path, keys = make_keys_file(tmp_path, {"csm": [Scope.read, Scope.admin]})
    return path, keys["csm"]


def _client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


@pytest.fixture
async def scoring(database: str, topics: dict[str, str], tmp_path: Path) -> AsyncIterator[Api]:
    await migrated_to(database, SCORING_MIGRATIONS)
    await stored_account(database, ACCOUNT, FakeClock().now)
    keys_file, key = _keys(tmp_path)
    settings = settings_for("127.0.0.1:9", database, topics, api_keys_file=keys_file)
    async with _client(create_scoring_app(settings, FakeClock())) as client:
        yield Api(client, key)


@pytest.fixture
async def alerts(database: str, topics: dict[str, str], tmp_path: Path) -> AsyncIterator[Api]:
    await migrated_to(database, ALERTS_MIGRATIONS)
    keys_file, key = _keys(tmp_path)
    settings = alerts_settings(
        kafka="127.0.0.1:9",
        database=database,
        topics=topics,
        alerts_admin_token=ADMIN_TOKEN,
        api_keys_file=keys_file,
    )
    async with _client(create_alerts_app(settings, FakeClock())) as client:
        yield Api(client, key)


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "details"}, body
    return body


async def test_a_nul_character_in_a_path_query_or_body_is_a_422(scoring: Api, alerts: Api) -> None:
    answers = [
        await scoring.client.get("/v1/accounts/a%00b", headers=scoring.keyed),
        await scoring.client.get("/v1/accounts/a%00b/history", headers=scoring.keyed),
        await scoring.client.get("/v1/accounts", params={"owner": "x\0"}, headers=scoring.keyed),
        await alerts.client.get("/v1/alerts", params={"rule": "\0"}, headers=alerts.keyed),
        await alerts.client.get("/v1/alerts/%00", headers=alerts.keyed),
        await alerts.client.post("/v1/alerts/a/ack", json={"by": "d\0"}, headers=alerts.keyed),
        await alerts.client.put("/v1/channels/c%00", json={"kind": "slack"}, headers=ADMIN),
    ]

    places = [_problem(r, 422, "invalid_request")["details"][0]["loc"] for r in answers]
    assert places == [
        ["path", "account_id"],
        ["path", "account_id"],
        ["query", "owner"],
        ["query", "rule"],
        ["path", "alert_id"],
        ["body"],
        ["path", "channel_id"],
    ]


async def test_a_cursor_past_what_the_database_holds_is_a_400(scoring: Api) -> None:
    history = f"/v1/accounts/{ACCOUNT}/history"
    huge = await scoring.client.get(
        history, params={"cursor": "99999999999"}, headers=scoring.keyed
    )
    last = await scoring.client.get(history, params={"cursor": "2147483647"}, headers=scoring.keyed)
    forged = base64.urlsafe_b64encode(orjson.dumps([2**63 + 5, "a"])).decode()
    listed = await scoring.client.get(
        "/v1/accounts", params={"cursor": forged}, headers=scoring.keyed
    )

    _problem(huge, 400, "bad_cursor")
    assert last.status_code == 200 and last.json()["entries"] == []
    _problem(listed, 400, "bad_cursor")


async def test_times_past_year_9999_are_a_422(scoring: Api, alerts: Api) -> None:
    past_9999 = "9999-12-31T23:00:00-05:00"  # year 10000 in UTC
    snooze_for = await alerts.client.post(
        "/v1/alerts/a/snooze", json={"for": "3000000d"}, headers=alerts.keyed
    )
    snooze_until = await alerts.client.post(
        "/v1/alerts/a/snooze", json={"until": past_9999}, headers=alerts.keyed
    )
    silence = await alerts.client.post(
        "/v1/silences", json={"rule": "risk_raised", "ends_at": past_9999}, headers=ADMIN
    )
    history = await scoring.client.get(
        f"/v1/accounts/{ACCOUNT}/history", params={"until": past_9999}, headers=scoring.keyed
    )

    locs = [
        _problem(r, 422, "invalid_request")["details"][0]["loc"]
        for r in (snooze_for, snooze_until, silence, history)
    ]
    assert locs == [["body", "for"], ["body", "until"], ["body", "ends_at"], ["query", "until"]]


async def test_a_snooze_for_more_days_than_a_timedelta_holds_is_a_422(
    database: str, topics: dict[str, str], tmp_path: Path
) -> None:
    await migrated_to(database, ALERTS_MIGRATIONS)
    keys_file, key = _keys(tmp_path)
    settings = alerts_settings(
        kafka="127.0.0.1:9", database=database, topics=topics, api_keys_file=keys_file
    )
    transport = httpx.ASGITransport(app=create_alerts_app(settings), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answer = await client.post(
            "/v1/alerts/a/snooze", json={"for": "9999999999d"}, headers={"X-API-Key": key}
        )

    _problem(answer, 422, "invalid_request")


async def test_every_error_is_a_problem_and_documented_as_one(scoring: Api, alerts: Api) -> None:
    answers = {
        "unknown route": await scoring.client.get("/v1/nothing-here"),
        "wrong method": await scoring.client.put("/v1/portfolio", headers=scoring.keyed),
        "invalid parameter": await scoring.client.get(
            "/v1/accounts", params={"limit": "0"}, headers=scoring.keyed
        ),
        "invalid body": await scoring.client.post(
            f"/v1/accounts/{ACCOUNT}/overrides", json={"field": "x"}, headers=scoring.keyed
        ),
        "unknown account": await scoring.client.get("/v1/accounts/nobody", headers=scoring.keyed),
        "alerts unknown route": await alerts.client.get("/nothing"),
        "alerts invalid json": await alerts.client.post(
            "/v1/alerts/a/ack",
            content=b"{",
            headers={**alerts.keyed, "content-type": "application/json"},
        ),
    }
    schemas = [(await api.client.get("/openapi.json")).json() for api in (scoring, alerts)]

    assert {name: r.status_code for name, r in answers.items()} == {
        "unknown route": 404,
        "wrong method": 405,
        "invalid parameter": 422,
        "invalid body": 422,
        "unknown account": 404,
        "alerts unknown route": 404,
        "alerts invalid json": 422,
    }
    for response in answers.values():
        _problem(response, response.status_code, response.json()["error"])
    assert answers["wrong method"].headers["allow"] == "GET"
    assert answers["invalid parameter"].json()["details"][0]["loc"] == ["query", "limit"]
    for schema in schemas:
        assert "HTTPValidationError" not in schema["components"]["schemas"]
        for operations in schema["paths"].values():
            for operation in operations.values():
                errors = {
                    code: answer
                    for code, answer in operation["responses"].items()
                    if code == "default" or code >= "400"
                }
                assert "default" in errors
                for answer in errors.values():
                    ref = answer["content"]["application/json"]["schema"].get("$ref", "")
                    assert ref.endswith(("/Problem", "Report")), (operation["summary"], answer)


async def test_the_key_is_checked_before_any_parameter_or_body(scoring: Api, alerts: Api) -> None:
    broken = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    answers = [
        await scoring.client.post(f"/v1/accounts/{ACCOUNT}/overrides", **broken),  # type: ignore[arg-type]
        await scoring.client.get("/v1/accounts", params={"limit": "many", "owner": "\0"}),
        await scoring.client.get("/v1/accounts/a%00/history", params={"cursor": "x"}),
        await alerts.client.post("/v1/alerts/a/snooze", **broken),  # type: ignore[arg-type]
        await alerts.client.put("/v1/routes", **broken),  # type: ignore[arg-type]
        await alerts.client.get("/v1/deliveries", params={"status": "?"}),
    ]

    assert [r.status_code for r in answers] == [401] * len(answers), [r.text for r in answers]
    for response in answers:
        assert response.json()["error"] in {"missing_api_key", "unauthorized"}


async def test_requests_without_a_valid_key_are_rate_limited_per_address(
    scoring: Api, alerts: Api
) -> None:
    refused = [await scoring.client.get("/v1/portfolio") for _ in range(60)]
    limited = await scoring.client.get("/v1/portfolio", headers={"X-API-Key": "vk_wrong_key"})
    keyed = await scoring.client.get("/v1/portfolio", headers=scoring.keyed)
    app = scoring.client._transport.app  # type: ignore[attr-defined]
    async with _client(app, "10.0.0.2") as elsewhere:
        other_address = await elsewhere.get("/v1/portfolio")
    wrong_tokens = [
        await alerts.client.get("/v1/routes", headers={"Authorization": "Bearer guess"})
        for _ in range(61)
    ]

    assert {r.status_code for r in refused} == {401}
    _problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert keyed.status_code == 200
    assert other_address.status_code == 401
    assert [r.status_code for r in wrong_tokens[-2:]] == [401, 429]


async def test_a_key_in_the_query_string_is_refused_and_never_logged(
    kafka: str,
    database: str,
    topics: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await migrated_to(database, SCORING_MIGRATIONS)
    keys_file, key = _keys(tmp_path)
    settings = settings_for(kafka, database, topics, api_keys_file=keys_file)
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    async with serve(create_scoring_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        named = await api.get("/v1/portfolio", params={"api_key": key})
        anywhere = await api.get("/v1/nothing", params={"q": key})
        open_route = await api.get("/healthz", params={"ApiKey": "guess"})

    for response in (named, anywhere, open_route):
        body = _problem(response, 400, "api_key_in_query")
        assert "header" in body["message"]
    access_lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access_lines) >= 3
    assert not [line for line in access_lines if key in line or "guess" in line]
    assert all("(redacted)" in line for line in access_lines if "?" in line)


async def test_readiness_and_503_answers_name_no_driver_message(
    postgres_admin: str, topics: dict[str, str], tmp_path: Path
) -> None:
    missing = make_url(postgres_admin).set(database=MARKER).render_as_string(hide_password=False)
    keys_file, key = _keys(tmp_path)
    settings = settings_for("127.0.0.1:9", missing, topics, api_keys_file=keys_file)
    async with _client(create_scoring_app(settings)) as client:
        ready = await client.get("/readyz")
        read = await client.get("/v1/portfolio", headers={"X-API-Key": key})

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable (")
    body = _problem(read, 503, "database_unavailable")
    assert body["message"].startswith("database unreachable (")
    assert read.headers["retry-after"]
    for answer in (ready, read):
        assert MARKER not in answer.text and "does not exist" not in answer.text


async def test_an_account_id_with_a_slash_is_read_as_is_or_percent_encoded(scoring: Api) -> None:
    reads: dict[str, Callable[[], Any]] = {
        "as is": lambda: scoring.client.get(f"/v1/accounts/{ACCOUNT}", headers=scoring.keyed),
        "encoded": lambda: scoring.client.get("/v1/accounts/team%2Facme", headers=scoring.keyed),
        "history": lambda: scoring.client.get(
            f"/v1/accounts/{ACCOUNT}/history", headers=scoring.keyed
        ),
        "overrides": lambda: scoring.client.get(
            f"/v1/accounts/{ACCOUNT}/overrides", headers=scoring.keyed
        ),
    }
    answers = {name: await read() for name, read in reads.items()}
    override = {
        "field": "band",
        "value": "red",
        "reason": "renewal call went badly",
        "expires_at": (FakeClock().now + timedelta(days=3)).isoformat(),
        "created_by": "kim@example.com",
    }
    made = await scoring.client.post(
        f"/v1/accounts/{ACCOUNT}/overrides", json=override, headers=scoring.keyed
    )
    lifted = await scoring.client.delete(
        "/v1/accounts/team%2Facme/overrides", params={"by": "kim"}, headers=scoring.keyed
    )

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(reads, 200)
    assert answers["as is"].json()["account_id"] == ACCOUNT
    assert answers["encoded"].json()["account_id"] == ACCOUNT
    assert made.status_code == 201, made.text
    assert lifted.json() == {"lifted": 1}
