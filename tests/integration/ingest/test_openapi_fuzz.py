"""Schemathesis over the ingest OpenAPI schema, against a running ingest on real Kafka:
no request it can make gets a 5xx, and every answer matches the documented schema."""

import asyncio
import sys
from pathlib import Path

import pytest

from services.ingest.settings import IngestSettings
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SCHEMATHESIS = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,response_schema_conformance"


@pytest.fixture
async def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    return ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets="whsec_fuzz",
    )


async def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    settings: IngestSettings, tmp_path: Path
) -> None:
    async with ingest_client(settings) as client:
        run = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            str(client.base_url.join("/openapi.json")),
            "--checks",
            CHECKS,
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261123",
            "--no-color",
            cwd=tmp_path,  # its example database stays out of the tree
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(run.communicate(), 300)

    report = output.decode(errors="replace")
    assert run.returncode == 0, report[-6000:]
    assert "11 selected" in report
