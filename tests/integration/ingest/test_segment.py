"""The official Segment library, pointed at Vitals, works unchanged."""

import asyncio
from typing import Any

import pytest
from segment.analytics import Client  # type: ignore[import-untyped]

from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter
from shared.events import Event, EventKind
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    return ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))


async def _send(url: str, calls: list[tuple[str, Any]], **options: Any) -> list[str]:
    """Make ``calls`` with the official client, flush it, return any errors it reported."""
    errors: list[str] = []

    def send() -> None:
        # In a thread: with sync_mode the client posts inside each call, and the app
        # under test answers on this test's event loop.
        client = Client(
            write_key="vk_test",
            host=url,
            on_error=lambda error, _batch: errors.append(str(error)),
            **options,
        )
        for method, arguments in calls:
            getattr(client, method)(**arguments)
        if not client.sync_mode:  # sync mode has no upload threads to join
            client.shutdown()

    await asyncio.to_thread(send)
    return errors


async def _events(kafka: str, topics: dict[str, str], count: int) -> list[Event]:
    return [Event.from_bytes(r.value) for r in await consume(kafka, topics["events_topic"], count)]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_every_call_type_from_the_official_client_lands_mapped(
    settings: IngestSettings, kafka: str, topics: dict[str, str], gzip: bool
) -> None:
    calls = [
        ("group", {"user_id": "u1", "group_id": "acme", "traits": {"name": "Acme", "seats": 5}}),
        ("identify", {"user_id": "u1", "traits": {"role": "admin"}, "message_id": "i1"}),
        ("track", {"user_id": "u1", "event": "Report Exported", "message_id": "t1"}),
        ("page", {"user_id": "u1", "name": "Pricing"}),
        ("screen", {"user_id": "u1", "name": "Home", "context": {"groupId": "other"}}),
    ]
    async with ingest_client(settings) as client:
        errors = await _send(str(client.base_url), calls, gzip=gzip)

    assert errors == []
    events = {e.name: e for e in await _events(kafka, topics, 5)}
    assert set(events) == {
        "account.traits",
        "user.identified",
        "Report Exported",
        "page.viewed",
        "screen.viewed",
    }
    assert events["account.traits"].traits is not None
    assert events["account.traits"].traits.name == "Acme"
    assert events["Report Exported"].account_id == "acme"
    assert events["Report Exported"].event_id == "t1"
    assert events["Report Exported"].kind is EventKind.usage
    assert events["screen.viewed"].account_id == "other"


async def test_the_user_to_account_mapping_survives_a_restart_and_repeats_are_dropped(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    group = ("group", {"user_id": "u7", "group_id": "acme", "message_id": "g7"})
    track = ("track", {"user_id": "u7", "event": "Seen", "message_id": "t7"})

    async with ingest_client(settings) as client:
        first = await _send(str(client.base_url), [group], sync_mode=True)
    async with ingest_client(settings) as client:
        second = await _send(str(client.base_url), [track, track, group], sync_mode=True)

    assert first == second == []
    events = await _events(kafka, topics, 2)
    assert sorted((e.event_id, e.account_id) for e in events) == [("g7", "acme"), ("t7", "acme")]


async def test_raw_batches_report_rejected_calls_and_dead_letter_them(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    batch = {
        "batch": [
            {"type": "track", "userId": "nobody", "event": "x", "messageId": "lost-1"},
            {"type": "alias", "userId": "u", "previousId": "p"},
            {"type": "track", "userId": "u", "event": "ok", "context": {"groupId": "g"}},
        ],
        "writeKey": "vk_test",
    }
    async with ingest_client(settings) as client:
        response = await client.post("/v1/batch", json=batch)
        malformed = await client.post(
            "/v1/track", content=b'{"writeKey": "vk_hidden", ', headers=_json()
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["success"], body["accepted"], body["rejected"]) == (True, 1, 2)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [
        (0, "unknown_account"),
        (1, "unsupported_type"),
    ]
    assert malformed.status_code == 400
    assert malformed.json() == {
        "success": False,
        "code": "malformed_json",
        "message": malformed.json()["message"],
    }
    letters = [
        DeadLetter.from_bytes(r.value)
        for r in await consume(kafka, f"{topics['events_topic']}.dlq", 3)
    ]
    assert sorted(d.reason for d in letters) == [
        "malformed_json",
        "unknown_account",
        "unsupported_type",
    ]
    assert all(b"vk_" not in d.original() for d in letters)
    assert {d.source for d in letters} == {"http:/v1/batch", "http:/v1/track"}


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}
