"""`vitals serve ingest --workers 2` as an operator starts it: every worker believes
X-Forwarded-For from the proxies VITALS_TRUSTED_PROXIES names and from no one else,
127.0.0.1 included (real processes, real Kafka and PostgreSQL)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from shared.auth import Scope
from tests.e2e.stack import migrate, service_env
from tests.support.auth import make_keys_file
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WORKERS = 2
RATE = 5  # requests without a key per address and hour, in each worker
REQUESTS = 40
FIRST_CLIENT = ipaddress.ip_address("198.18.0.1")


async def _keyless_statuses(url: str) -> list[int]:
    """REQUESTS requests without a key, each saying it is another client."""
    statuses = []
    async with httpx.AsyncClient(base_url=url) as client:
        for n in range(REQUESTS):
            headers = {"x-forwarded-for": str(FIRST_CLIENT + n)}
            response = await client.post("/v1/events", json=native_usage_json(), headers=headers)
            statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
async def test_ingest_workers_believe_only_the_named_proxies(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path, trusted: str
) -> None:
    keys_file, _ = make_keys_file(tmp_path, {"pipeline": [Scope.ingest]})
    env = service_env(kafka=kafka, database=database, topics=topics, webhook_url="http://x")
    env.pop("FORWARDED_ALLOW_IPS", None)
    env.pop("VITALS_TRUSTED_PROXIES", None)
    env.update(
        {
            "VITALS_API_KEYS_FILE": str(keys_file),
            "VITALS_API_UNAUTHENTICATED_RATE_LIMIT": f"{RATE}/hour",
        }
    )
    if trusted:
        env["VITALS_TRUSTED_PROXIES"] = trusted
    migrate(env)
    ingest = ServiceProcess("ingest", env, tmp_path, args=("--workers", str(WORKERS)))
    ingest.start()
    try:
        await ingest.wait_ready()
        statuses = await _keyless_statuses(ingest.url)
    finally:
        ingest.kill()

    assert set(statuses) <= {401, 429}
    if trusted:
        # Each forwarded address its own bucket, one request in each.
        assert statuses == [401] * REQUESTS
    else:
        # One bucket per worker, 127.0.0.1's, whatever the header said.
        assert statuses.count(401) <= RATE * WORKERS
        assert statuses[-1] == 429
