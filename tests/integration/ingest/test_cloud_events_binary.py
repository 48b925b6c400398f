"""CloudEvents in binary content mode (attributes in ``ce-*`` headers, the body is the
data), made by the CloudEvents SDK, posted to a running ingest over HTTP and scored by
a running scoring service, on real Kafka and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1.conversion import to_binary
from cloudevents.v1.http import CloudEvent as LegacyCloudEvent

from services.scoring.app import create_app as create_scoring_app
from shared.events import Event
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume
from tests.support.scoring_service import applied, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SOURCE = "//crm/app"
DATA = {"user_id": "u1", "feature": "report.exported", "quantity": 2}


def _attributes(event_id: str, at: datetime | str, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "source": SOURCE, "type": "report.exported", "time": at, **extra}


def _sent(message: HTTPMessage) -> dict[str, Any]:
    return {"content": message.body, "headers": message.headers}


def _same_content(event: Event) -> dict[str, Any]:
    """An event's content, less what differs between two posts: its id and receipt."""
    return event.model_dump(mode="json", exclude={"event_id", "received_at"}, exclude_none=True)


async def test_binary_cloud_events_land_as_structured_ones_do_and_are_scored(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    json_data = {"datacontenttype": "application/json"}
    binary = to_binary_event(CloudEvent(_attributes("b1", at, accountid="acme", **json_data), DATA))
    structured = to_structured_event(
        CloudEvent(_attributes("s1", at, accountid="acme", **json_data), DATA)
    )
    # The SDK's 1.x API, as Knative's and Dapr's senders: no datacontenttype, so no
    # Content-Type header; the account is an extension header.
    legacy_headers, legacy_body = to_binary(
        LegacyCloudEvent(_attributes("l1", at.isoformat(), accountid="globex"), DATA)
    )
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(scoring_db))
    scoring_app = create_scoring_app(settings_for(kafka, scoring_db, topics))
    async with (
        ingest_client(settings) as ingest,
        serve(scoring_app) as scoring_url,
        httpx.AsyncClient(base_url=scoring_url) as scoring,
    ):
        posted = [
            await ingest.post("/v1/events", **_sent(binary)),
            await ingest.post("/v1/events", **_sent(structured)),
            await ingest.post("/v1/events", content=legacy_body, headers=legacy_headers),
        ]
        assert [p.status_code for p in posted] == [202, 202, 202], [p.text for p in posted]
        assert [p.json()["event_ids"] for p in posted] == [
            [f"{SOURCE}#b1"],
            [f"{SOURCE}#s1"],
            [f"{SOURCE}#l1"],
        ]
        acme = await wait_for(applied(scoring, "acme", 2), 60, "acme's two events scored")
        globex = await wait_for(applied(scoring, "globex", 1), 60, "globex's event scored")

    assert acme["health_score"] is not None and globex["health_score"] is not None
    records = await consume(kafka, topics["events_topic"], 3)
    events = {e.event_id: e for e in (Event.from_bytes(r.value) for r in records)}
    assert _same_content(events[f"{SOURCE}#b1"]) == _same_content(events[f"{SOURCE}#s1"])
    assert (events[f"{SOURCE}#b1"].account_id, events[f"{SOURCE}#b1"].occurred_at) == ("acme", at)
    assert events[f"{SOURCE}#l1"].account_id == "globex"
    assert _same_content(events[f"{SOURCE}#l1"]) == {
        **_same_content(events[f"{SOURCE}#b1"]),
        "account_id": "globex",
    }


async def test_a_binary_cloud_event_missing_attributes_is_refused_naming_the_headers(
    database: str, kafka: str, topics: dict[str, str]
) -> None:
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))
    async with ingest_client(settings) as ingest:
        missing = await ingest.post(
            "/v1/events", json=DATA, headers={"ce-specversion": "1.0", "ce-accountid": "acme"}
        )
        not_json = await ingest.post(
            "/v1/events",
            content=b"a,b",
            headers={"content-type": "text/csv", "ce-id": "1", "ce-source": SOURCE},
        )
        bad_json = await ingest.post(
            "/v1/events", content=b"{", headers={"ce-id": "1", "ce-source": SOURCE}
        )

    assert missing.status_code == 422, missing.text
    fields = {d["field"] for d in missing.json()["details"]}
    assert {"ce-id", "ce-source", "ce-type"} <= fields
    assert "binary mode" in missing.json()["message"]
    assert not_json.status_code == 415
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "malformed_json")
