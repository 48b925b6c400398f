"""Which client address a request without a key counts against, on a running ingest
(uvicorn with the options `vitals serve` gives it): the connection's, unless the
connection comes from a proxy VITALS_TRUSTED_PROXIES names, whose X-Forwarded-For then
says who the client is. The requests come from 127.0.0.1, which uvicorn trusts by
default."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest.settings import IngestSettings
from shared.auth import Scope
from tests.support.auth import make_keys_file
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

REQUESTS = 300
# Requests without a key one address may send; per hour, so that no test is slow enough
# for the window to let a request through again.
RATE = 50
FIRST_CLIENT = ipaddress.ip_address("198.18.0.1")  # the benchmarking network, RFC 2544

MakeSettings = Callable[..., Awaitable[IngestSettings]]


@pytest.fixture
def keyed_settings(
    kafka: str, topics: dict[str, str], database: str, tmp_path: Path
) -> MakeSettings:
    """Ingest's settings with API keys on and RATE keyless requests per address."""

    async def make(**overrides: Any) -> IngestSettings:
        keys_file, _ = make_keys_file(tmp_path, {"pipeline": [Scope.ingest]})
        return ingest_test_settings(
            kafka=kafka,
            topics=topics,
            database=await migrated(database),
            api_keys_file=keys_file,
            api_unauthenticated_rate_limit=f"{RATE}/hour",
            **overrides,
        )

    return make


def forwarded_for(n: int) -> dict[str, str]:
    return {"x-forwarded-for": str(FIRST_CLIENT + n)}


async def keyless(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/events", json=native_usage_json(), headers=headers)


async def test_an_untrusted_client_cannot_pick_its_bucket_with_x_forwarded_for(
    keyed_settings: MakeSettings,
) -> None:
    settings = await keyed_settings()
    assert settings.trusted_proxies == []  # the default
    async with ingest_client(settings) as client:
        rotating = [await keyless(client, forwarded_for(n)) for n in range(REQUESTS)]
        plain = await keyless(client, {})

    statuses = [response.status_code for response in rotating]
    assert statuses == [401] * RATE + [429] * (REQUESTS - RATE)
    for response in [*rotating[RATE:], plain]:
        assert response.status_code == 429
        assert response.json()["error"] == "rate_limited"
        # One bucket, the connection's: the headers named 300 others.
        assert response.json()["message"].startswith("address 127.0.0.1 is over its rate")
        assert int(response.headers["retry-after"]) >= 1


async def test_a_trusted_proxy_names_the_client_with_x_forwarded_for(
    keyed_settings: MakeSettings,
) -> None:
    settings = await keyed_settings(trusted_proxies="127.0.0.1")
    async with ingest_client(settings) as client:
        rotating = [await keyless(client, forwarded_for(n)) for n in range(REQUESTS)]
        # The first client again: its own bucket, with one request in it already.
        again = [await keyless(client, forwarded_for(0)) for _ in range(RATE)]
        # The proxy's own requests have a bucket of their own, still empty.
        plain = await keyless(client, {})

    assert [response.status_code for response in rotating] == [401] * REQUESTS
    assert {response.json()["error"] for response in rotating} == {"missing_api_key"}
    assert [response.status_code for response in again] == [401] * (RATE - 1) + [429]
    assert again[-1].json()["message"].startswith(f"address {FIRST_CLIENT} is over its rate")
    assert plain.status_code == 401
