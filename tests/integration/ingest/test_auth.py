"""API keys on every intake route of a running ingest, with a real keys file."""

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client  # type: ignore[import-untyped]

from services.ingest.settings import IngestSettings
from shared.auth import Scope
from shared.events import Event
from tests.support.auth import make_keys_file
from tests.support.events import native_usage_json
from tests.support.ingest_apps import (
    ingest_client,
    ingest_test_settings,
    invoice,
    migrated,
    signature_header,
    stripe_event,
    topic_size,
)
from tests.support.kafka import consume

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SCOPES = {"pipeline": [Scope.ingest], "dashboard": [Scope.read], "spare": [Scope.ingest]}
SECRET = "whsec_auth"


@pytest.fixture
async def keyed(
    kafka: str, topics: dict[str, str], database: str, tmp_path: Path
) -> tuple[IngestSettings, dict[str, str]]:
    keys_file, keys = make_keys_file(tmp_path, SCOPES, rate="3/minute")
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        api_keys_file=keys_file,
        ingest_stripe_webhook_secrets=SECRET,
    )
    return settings, keys


def _basic(key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _segment_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "success": False,
        "code": code,
        "message": response.json()["message"],
    }


async def test_native_events_need_a_valid_key_with_the_ingest_scope(
    keyed: tuple[IngestSettings, dict[str, str]],
) -> None:
    settings, keys = keyed
    event = native_usage_json(account_id="acme")
    async with ingest_client(settings) as client:
        missing = await client.post("/v1/events", json=event)
        wrong = await client.post("/v1/events", json=event, headers={"x-api-key": "vk_nope"})
        forged = keys["pipeline"][:-1] + ("A" if keys["pipeline"][-1] != "A" else "B")
        tampered = await client.post("/v1/events", json=event, headers={"x-api-key": forged})
        read_only = await client.post(
            "/v1/events", json=event, headers={"authorization": f"Bearer {keys['dashboard']}"}
        )
        bearer = await client.post(
            "/v1/events", json=event, headers={"authorization": f"Bearer {keys['pipeline']}"}
        )
        header = await client.post("/v1/events", json=event, headers={"x-api-key": keys["spare"]})

    assert (missing.status_code, missing.json()["error"]) == (401, "missing_api_key")
    assert "www-authenticate" in missing.headers
    assert [(r.status_code, r.json()["error"]) for r in (wrong, tampered)] == [
        (401, "invalid_api_key"),
        (401, "invalid_api_key"),
    ]
    assert (read_only.status_code, read_only.json()["error"]) == (403, "insufficient_scope")
    assert [bearer.status_code, header.status_code] == [202, 202]


async def test_a_key_over_its_rate_gets_429_with_retry_after_on_every_route_shape(
    keyed: tuple[IngestSettings, dict[str, str]],
) -> None:
    settings, keys = keyed
    pipeline = {"x-api-key": keys["pipeline"]}
    call = {"userId": "u1", "event": "Seen", "context": {"groupId": "acme"}}
    async with ingest_client(settings) as client:
        allowed = [
            await client.post("/v1/events", json=native_usage_json(), headers=pipeline)
            for _ in range(3)
        ]
        limited = await client.post("/v1/events", json=native_usage_json(), headers=pipeline)
        segment_limited = await client.post(
            "/v1/track", json=call, headers=_basic(keys["pipeline"])
        )
        other_key = await client.post("/v1/track", json=call, headers=_basic(keys["spare"]))

    assert [r.status_code for r in allowed] == [202, 202, 202]
    assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    _segment_error(segment_limited, 429, "rate_limited")
    assert int(segment_limited.headers["retry-after"]) >= 1
    assert other_key.status_code == 200, other_key.text


async def test_segment_takes_the_key_as_basic_username_or_write_key_in_the_body(
    keyed: tuple[IngestSettings, dict[str, str]], kafka: str, topics: dict[str, str]
) -> None:
    settings, keys = keyed
    call = {"userId": "u1", "event": "Seen", "context": {"groupId": "acme"}}
    async with ingest_client(settings) as client:
        errors = await _official_client(str(client.base_url), keys["pipeline"])
        in_body = await client.post(
            "/v1/track", json={**call, "messageId": "body", "writeKey": keys["spare"]}
        )
        wrong_in_body = await client.post("/v1/track", json={**call, "writeKey": "vk_wrong"})
        none = await client.post("/v1/batch", json={"batch": [call]})
        unreadable = await client.post(
            "/v1/track", content=b"{not json", headers={"content-type": "application/json"}
        )
        read_scope = await client.post("/v1/track", json=call, headers=_basic(keys["dashboard"]))
        wrong_type_unkeyed = await client.post(
            "/v1/batch", content=b"{}", headers={"content-type": "text/plain"}
        )
        wrong_type = await client.post(
            "/v1/batch",
            content=b"{}",
            headers={"content-type": "text/plain", **_basic(keys["pipeline"])},
        )

    assert errors == []
    assert in_body.status_code == 200, in_body.text
    _segment_error(wrong_in_body, 401, "invalid_api_key")
    _segment_error(none, 401, "missing_api_key")
    # Without a key nothing is read: not even a broken body reaches the dead-letter topic.
    _segment_error(unreadable, 401, "missing_api_key")
    _segment_error(read_scope, 403, "insufficient_scope")
    # The key comes first: whatever is wrong with the body, a sender without one is told so.
    _segment_error(wrong_type_unkeyed, 401, "missing_api_key")
    _segment_error(wrong_type, 400, "unsupported_media_type")
    # Only the body of the known sender is dead-lettered.
    assert await topic_size(kafka, f"{topics['events_topic']}.dlq") == 1
    events = [Event.from_bytes(r.value) for r in await consume(kafka, topics["events_topic"], 2)]
    assert sorted(e.event_id for e in events) == ["body", "official"]


async def test_stripe_webhooks_are_authenticated_by_their_signature_not_a_key(
    keyed: tuple[IngestSettings, dict[str, str]],
) -> None:
    settings, _ = keyed
    body = stripe_event("invoice.paid", invoice(amount_paid=100))
    headers = {
        "content-type": "application/json",
        "stripe-signature": signature_header(body, SECRET),
    }
    async with ingest_client(settings) as client:
        response = await client.post("/v1/stripe/webhook", content=body, headers=headers)

    assert response.status_code == 200, response.text


async def test_the_openapi_schema_says_which_routes_need_a_key(
    keyed: tuple[IngestSettings, dict[str, str]],
) -> None:
    settings, _ = keyed
    async with ingest_client(settings) as client:
        schema = (await client.get("/openapi.json")).json()

    posts = {path: item["post"] for path, item in schema["paths"].items() if "post" in item}
    keyed_paths = {path for path, post in posts.items() if post.get("security")}
    assert keyed_paths == set(posts) - {"/v1/stripe/webhook"}
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKeyHeader", "basic"}


async def _official_client(url: str, key: str) -> list[str]:
    errors: list[str] = []

    def send() -> None:
        client = Client(
            write_key=key,
            host=url,
            sync_mode=True,
            on_error=lambda error, _batch: errors.append(str(error)),
        )
        arguments: dict[str, Any] = {"context": {"groupId": "acme"}, "message_id": "official"}
        client.track(user_id="u1", event="Seen", **arguments)

    await asyncio.to_thread(send)
    return errors


async def test_without_a_key_nothing_else_of_a_request_is_looked_at(
    keyed: tuple[IngestSettings, dict[str, str]],
) -> None:
    settings, _ = keyed
    too_large = b"[" + b"0," * 300_000 + b"0]"
    json_type = {"content-type": "application/json"}
    async with ingest_client(settings) as client:
        native = [
            await client.post("/v1/events?x=%00", content=b"{", headers=json_type),
            await client.post("/v1/events", content=too_large, headers=json_type),
            await client.post("/v1/events", content=b"{}", headers={"content-type": "text/csv"}),
        ]
        segment = [
            await client.post("/v1/track?x=%00", content=b"{", headers=json_type),
            await client.post("/v1/batch", content=too_large, headers=json_type),
        ]

    assert [r.json()["error"] for r in native] == ["missing_api_key"] * 3
    for response in segment:
        _segment_error(response, 401, "missing_api_key")
