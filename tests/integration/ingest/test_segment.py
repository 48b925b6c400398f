"""The official Segment library, pointed at Vitals, works unchanged."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from segment.analytics import Client  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter
from shared.events import Event, EventKind
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume
from tests.support.servers import is_ready, serve, wait_for

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
    # The call of a user with no account yet waits for that user's group call.
    counts = (body["success"], body["accepted"], body["rejected"], body["waiting"])
    assert counts == (True, 1, 1, 1)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "unsupported_type")]
    assert malformed.status_code == 400
    assert malformed.json() == {
        "success": False,
        "code": "malformed_json",
        "message": malformed.json()["message"],
    }
    letters = [
        DeadLetter.from_bytes(r.value)
        for r in await consume(kafka, f"{topics['events_topic']}.dlq", 2)
    ]
    assert sorted(d.reason for d in letters) == ["malformed_json", "unsupported_type"]
    assert all(b"vk_" not in d.original() for d in letters)
    assert {d.source for d in letters} == {"http:/v1/batch", "http:/v1/track"}


async def test_an_identify_before_the_group_call_waits_for_it_and_reaches_the_account(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    """At sign-up a user is identified before the app calls group: one request each."""
    identify = ("identify", {"user_id": "new", "traits": {"email": "n@x"}, "message_id": "i9"})
    track = ("track", {"user_id": "new", "event": "Signed Up", "message_id": "t9"})
    group = ("group", {"user_id": "new", "group_id": "acme", "message_id": "g9"})

    before = {o: _waiting(o) for o in ("held", "released")}
    async with ingest_client(settings) as client:
        early = await _send(str(client.base_url), [identify, track], sync_mode=True)
        later = await _send(str(client.base_url), [group], sync_mode=True)
        again = await _send(str(client.base_url), [group], sync_mode=True)

    assert early == later == again == []
    assert {o: _waiting(o) - before[o] for o in before} == {"held": 2, "released": 2}
    events = await _events(kafka, topics, 3)
    assert sorted((e.event_id, e.account_id) for e in events) == [
        ("g9", "acme"),
        ("i9", "acme"),
        ("t9", "acme"),
    ]


async def test_a_call_whose_group_call_never_comes_is_dead_lettered_when_its_wait_ends(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    settings = ingest_test_settings(
        kafka=kafka, topics=topics, database=await migrated(database), ingest_segment_wait_s=1
    )
    call = {"type": "identify", "userId": "ghost", "messageId": "i-ghost", "writeKey": "vk_test"}

    async with ingest_client(settings) as client:
        response = await client.post("/v1/identify", json=call)
        (record,) = await consume(kafka, f"{topics['events_topic']}.dlq", 1)

    assert response.json()["waiting"] == 1
    letter = DeadLetter.from_bytes(record.value)
    assert (letter.reason, letter.event_id) == ("unknown_account", "i-ghost")
    assert "ghost" in letter.message


async def test_a_segment_request_costs_at_most_two_database_transactions(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    """Reading and writing the users and waiting calls shares the transaction that claims
    the event ids; forgetting the released calls, the one that confirms them."""
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_dedupe_prune_interval_s=3600,  # no sweep among the requests counted
    )
    requests = [
        # u1 has no account yet: its identify and track wait; u2's names its account.
        [
            {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"role": "cto"}},
            {"type": "track", "userId": "u1", "event": "Opened", "messageId": "t1"},
            {"type": "track", "userId": "u2", "event": "Opened", "context": {"groupId": "g"}},
            {"type": "group", "userId": "u3", "groupId": "globex", "messageId": "g3"},
        ],
        # u1's group call releases both; u4 is grouped after its identify, in one batch.
        [
            {"type": "group", "userId": "u1", "groupId": "acme", "messageId": "g1"},
            {"type": "identify", "userId": "u4", "messageId": "i4"},
            {"type": "group", "userId": "u4", "groupId": "initech", "messageId": "g4"},
            {"type": "track", "userId": "u3", "event": "Opened", "messageId": "t3"},
        ],
        # Known from the stored group call now.
        [{"type": "track", "userId": "u1", "event": "Closed", "messageId": "t1b"}],
    ]
    app = create_app(settings)
    begun = _transactions_begun(app)
    before = {o: _waiting(o) for o in ("held", "released")}

    answers, counts = [], []
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        await wait_for(lambda: is_ready(client), 30, "ingest to be ready")
        for calls in requests:
            begun.clear()
            body = {"batch": calls, "writeKey": "vk_test"}
            answers.append((await client.post("/v1/batch", json=body)).json())
            counts.append(len(begun))

    assert [(a["accepted"], a["waiting"]) for a in answers] == [(2, 2), (4, 0), (1, 0)]
    assert {o: _waiting(o) - before[o] for o in before} == {"held": 2, "released": 2}
    assert all(count <= 2 for count in counts), counts
    events = await _events(kafka, topics, 9)
    assert {e.event_id: e.account_id for e in events if e.event_id[0] in "it"} == {
        "i1": "acme",
        "t1": "acme",
        "i4": "initech",
        "t3": "globex",
        "t1b": "acme",
    }


def _transactions_begun(app: FastAPI) -> list[object]:
    """Every transaction ``app`` begins on its database from now on, as it begins."""
    engine: AsyncEngine = app.state.sessions.kw["bind"]
    begun: list[object] = []
    event.listen(engine.sync_engine, "begin", begun.append)
    return begun


def _waiting(outcome: str) -> float:
    sample = REGISTRY.get_sample_value(
        "vitals_ingest_segment_waiting_calls_total", {"outcome": outcome}
    )
    return sample or 0.0


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}
