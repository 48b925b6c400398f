"""CloudEvents made by the CloudEvents SDK, posted to a running ingest on real Kafka."""

from datetime import UTC, datetime

import orjson
import pytest
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter
from shared.events import Event
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

BATCH = "application/cloudevents-batch+json"


@pytest.fixture
async def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    return ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))


def _cloud_event(event_id: str, data: dict[str, object]) -> CloudEvent:
    return CloudEvent(
        {
            "id": event_id,
            "source": "//crm/app",
            "type": "report.exported",
            "time": datetime(2026, 11, 22, 11, tzinfo=UTC),
            "datacontenttype": "application/json",
            "accountid": "acme",
        },
        data,
    )


async def test_structured_and_batched_cloud_events_land_as_native_events(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    single = to_structured_event(_cloud_event("1", {"user_id": "u1"}))
    batch = [
        orjson.loads(JSONFormat().write(_cloud_event("2", {"feature": "export"}))),
        {"specversion": "1.0", "source": "//crm/app", "type": "no.id", "data": {}},
        orjson.loads(JSONFormat().write(_cloud_event("1", {"user_id": "u1"}))),
    ]
    async with ingest_client(settings) as client:
        posted = await client.post("/v1/events", content=single.body, headers=single.headers)
        batched = await client.post(
            "/v1/events", content=orjson.dumps(batch), headers={"content-type": BATCH}
        )

    assert posted.status_code == 202, posted.text
    assert posted.json()["event_ids"] == ["//crm/app#1"]
    assert batched.status_code == 202, batched.text
    body = batched.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "invalid_event")]
    events = [Event.from_bytes(r.value) for r in await consume(kafka, topics["events_topic"], 2)]
    assert sorted((e.event_id, e.account_id, e.name) for e in events) == [
        ("//crm/app#1", "acme", "report.exported"),
        ("//crm/app#2", "acme", "report.exported"),
    ]
    letters = await consume(kafka, f"{topics['events_topic']}.dlq", 1)
    assert DeadLetter.from_bytes(letters[0].value).source == "http:/v1/events"


async def test_an_invalid_single_cloud_event_is_refused_with_422_and_bad_bodies_with_4xx(
    settings: IngestSettings,
) -> None:
    headers = {"content-type": "application/cloudevents+json"}
    invalid = {"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": {}}
    async with ingest_client(settings) as client:
        refused = await client.post("/v1/events", content=orjson.dumps(invalid), headers=headers)
        not_a_list = await client.post("/v1/events", content=b"{}", headers={"content-type": BATCH})
        wrong_type = await client.post(
            "/v1/events", content=b"{}", headers={"content-type": "text/plain"}
        )

    assert refused.status_code == 422
    assert "specversion" in [d["field"] for d in refused.json()["details"]]
    assert (not_a_list.status_code, not_a_list.json()["error"]) == (400, "invalid_body")
    assert wrong_type.status_code == 415
    assert "application/cloudevents+json" in wrong_type.json()["message"]
