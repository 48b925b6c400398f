"""`vitals serve ingest --workers 2`: whichever worker answers /metrics counts the
events of both (real processes, real Kafka and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.e2e.stack import migrate, service_env
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess, metric_value
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ACCEPTED = "vitals_ingest_events_accepted_total"


async def test_two_ingest_workers_counters_add_up_on_metrics(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = service_env(kafka=kafka, database=database, topics=topics, webhook_url="http://x")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    migrate(env)
    ingest = ServiceProcess("ingest", env, tmp_path, args=("--workers", "2"))
    ingest.start()
    posted = 0
    try:
        await ingest.wait_ready()

        async def both_workers_accepted() -> dict[int, float] | None:
            nonlocal posted
            posted += await _post_events(ingest.url, 20, first=posted)
            by_worker = accepted_by_worker(metrics_dir)
            return by_worker if len([n for n in by_worker.values() if n]) >= 2 else None

        by_worker = await wait_for(both_workers_accepted, 60, "events accepted by both workers")
        async with httpx.AsyncClient(base_url=ingest.url) as client:
            answers = [
                metric_value((await client.get("/metrics")).text, ACCEPTED, source="native")
                for _ in range(10)
            ]
    finally:
        ingest.kill()

    assert sum(by_worker.values()) == posted
    assert max(by_worker.values()) < posted  # neither worker took them all
    assert answers == [posted] * 10  # each answer, from either worker, counts all


async def _post_events(url: str, count: int, first: int) -> int:
    """``count`` events, each on a connection of its own so that both workers take some."""

    async def post(n: int) -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            event = native_usage_json(account_id="acme", event_id=f"w-{n}")
            response = await client.post("/v1/events", json=event)
            assert response.status_code == 202, response.text

    await asyncio.gather(*(post(first + n) for n in range(count)))
    return count


def accepted_by_worker(folder: Path) -> dict[int, float]:
    """Accepted events per worker process, read from the files the workers write."""
    counts: Counter[int] = Counter()
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            if json.loads(key)[1] == ACCEPTED:
                counts[pid] += value
    return dict(counts)
