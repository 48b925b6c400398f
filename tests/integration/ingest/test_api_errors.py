"""Ingest's 503 answers and readiness name the kind of failure, never a driver's
message (it can quote values), and a key in the URL is refused."""

import httpx
import pytest
from sqlalchemy.engine import make_url

from services.ingest.app import create_app
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_test_settings
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MARKER = "vitals_ingest_missing_marker"


async def test_a_missing_database_is_named_without_the_drivers_message(
    kafka: str, topics: dict[str, str], postgres_admin: str
) -> None:
    missing = make_url(postgres_admin).set(database=MARKER).render_as_string(hide_password=False)
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=missing)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        await wait_for(lambda: _broker_ready(client), 30, "the broker connection")
        ready = await client.get("/readyz")
        posted = await client.post("/v1/events", json=native_usage_json(account_id="acme"))

    assert ready.json()["checks"]["database"].startswith("unreachable (")
    assert posted.status_code == 503, posted.text
    assert posted.json()["error"] == "database_unavailable"
    assert posted.json()["message"].startswith("events not stored: database unreachable (")
    assert posted.headers["retry-after"]
    for answer in (ready, posted):
        assert MARKER not in answer.text and "does not exist" not in answer.text


async def _broker_ready(client: httpx.AsyncClient) -> bool:
    checks: dict[str, str] = (await client.get("/readyz")).json()["checks"]
    return checks["kafka"] == "ok"
