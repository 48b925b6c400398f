"""A request answered 503 because the broker's acknowledgement came late must not
turn into two copies of its events once the sender retries."""

import httpx
import pytest

from services.ingest.settings import IngestSettings
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated, topic_size
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    # Far shorter than any acknowledgement: every publish times out, then lands anyway.
    return ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_publish_timeout_s=0.0005,
    )


async def test_a_retry_after_a_late_acknowledgement_is_a_duplicate_not_a_second_copy(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    event = native_usage_json(event_id="late-1")
    async with ingest_client(settings) as client:
        first = await client.post("/v1/events", json=event)
        retries: list[httpx.Response] = []

        async def retry_is_answered() -> bool:
            retries.append(await client.post("/v1/events", json=event))
            return retries[-1].status_code == 202

        await wait_for(retry_is_answered, 20, "the retry to be answered 202", every_s=0.2)

    assert first.status_code == 503, first.text
    assert first.json()["error"] == "broker_unavailable"
    # Until the first publish settles, a retry is told to wait rather than publish again.
    assert {r.json()["error"] for r in retries[:-1]} <= {"in_flight"}
    assert (retries[-1].json()["accepted"], retries[-1].json()["duplicates"]) == (0, 1)
    assert await topic_size(kafka, topics["events_topic"]) == 1
