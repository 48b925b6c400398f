"""`make bench-alerts`: score messages evaluated and queued per second, and the latency
from a score message to its webhook delivered, with a local receiver.

Every message is a new account whose churn risk rises from low to high, so each one
opens an alert and queues a delivery to one generic webhook channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect

from bench import measure
from bench.measure import say
from services.alerts.models import consumer_offsets
from shared.db import create_engine
from shared.scores import Risk
from tests.support.alerts_messages import enriched_change
from tests.support.infra import create_database, drop_database
from tests.support.servers import serve

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6
SIZES = {"smoke": (2_000, 3.0), "small": (4_000, 3.0), "full": (25_000, 15.0)}
OPEN_LOOP_RATE = 200.0


@dataclass
class Arrivals:
    """A webhook receiver that notes when each account's alert arrived."""

    at: dict[str, float] = field(default_factory=dict)
    expected: int | None = None
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            try:
                body = await request.json()
            except ClientDisconnect:  # the service stopped at the end of a run
                return Response(status_code=499)
            self.at.setdefault(str(body.get("account_id")), time.perf_counter())
            if self.expected is not None and len(self.at) >= self.expected:
                self.all_in.set()
            return Response(status_code=204)

        return app


def score_message(account_id: str) -> tuple[bytes, bytes]:
    change = enriched_change(
        account_id=account_id,
        health_score=30,
        previous_score=72,
        risk=Risk.high,
        previous_risk=Risk.low,
        risk_reasons=["health band red"],
        computed_at=datetime.now(UTC),
    )
    return account_id.encode(), change.to_bytes()


@dataclass
class AlertsUnderTest:
    env: dict[str, str]
    group: str
    engine: AsyncEngine
    log: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        port = measure.free_port()
        command = [sys.executable, "-m", "services", "serve", "alerts", "--port", str(port)]
        self.process = await measure.start_process(command, self.log, self.env)
        await measure.wait_ready(f"http://127.0.0.1:{port}", self.process)

    async def evaluated(self) -> int:
        query = select(func.coalesce(func.sum(consumer_offsets.c.next_offset), 0)).where(
            consumer_offsets.c.consumer_group == self.group
        )
        async with self.engine.connect() as connection:
            return int(await connection.scalar(query) or 0)


@asynccontextmanager
async def alerts_under_test(
    bootstrap: str, postgres: str, topic: str, hook_url: str, log: Path
) -> AsyncIterator[AlertsUnderTest]:
    database = await create_database(postgres)
    run = uuid.uuid4().hex[:8]
    group = f"bench-alerts-{run}"
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SCORES_TOPIC": topic,
        "ALERTS_TOPIC": f"bench.{run}.alerts",
        "ALERTS_CONSUMER_GROUP": group,
        "ALERTS_DATABASE_URL": database,
        "ALERTS_WEBHOOK_URL": hook_url,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "STARTUP_RETRY_MAX_S": "1",
    }
    env = {**os.environ, **{f"VITALS_{k}": v for k, v in settings.items()}}
    await measure.migrate("alerts", env, log)
    alerts = AlertsUnderTest(env, group, create_engine(database), log)
    try:
        yield alerts
    finally:
        if alerts.process is not None:
            await measure.stop_process(alerts.process)
        await alerts.engine.dispose()
        await drop_database(postgres, database)


async def catch_up(bootstrap: str, postgres: str, total: int, log: Path) -> measure.Throughput:
    """Messages evaluated and queued per second from a pre-loaded topic, with the
    process's peak RSS and CPU time."""
    topic = f"bench.{uuid.uuid4().hex[:8]}.scores"
    await measure.create_topic(bootstrap, topic, PARTITIONS)
    await measure.load_topic(bootstrap, topic, [score_message(f"a{n}") for n in range(total)])
    receiver = Arrivals()
    async with (
        serve(receiver.app()) as url,
        alerts_under_test(bootstrap, postgres, topic, f"{url}/hook", log) as alerts,
    ):
        await alerts.start()
        first: float | None = None
        deadline = time.perf_counter() + 600
        while (done := await alerts.evaluated()) < total:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"alerts evaluated {done} of {total} in 600 s")
            if done and first is None:
                first, first_done = time.perf_counter(), done
            await asyncio.sleep(0.05)
        if first is None:
            raise RuntimeError("alerts finished before a first move was seen")
        result = measure.Throughput(total - first_done, time.perf_counter() - first)
        assert alerts.process is not None
        result.peak_rss_mb, result.cpu_s = measure.process_stats(alerts.process.pid)
        return result


async def open_loop(
    bootstrap: str, postgres: str, rate: float, seconds: float, log: Path
) -> list[float]:
    """Score messages at ``rate`` for ``seconds``; each one's send-to-webhook latency."""
    topic = f"bench.{uuid.uuid4().hex[:8]}.scores"
    await measure.create_topic(bootstrap, topic, PARTITIONS)
    receiver = Arrivals()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        async with (
            serve(receiver.app()) as url,
            alerts_under_test(bootstrap, postgres, topic, f"{url}/hook", log) as alerts,
        ):
            await alerts.start()
            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                key, value = score_message(f"o{n}")
                sent[key.decode()] = time.perf_counter()
                await producer.send(topic, value=value, key=key)
            receiver.expected = len(sent)
            if len(receiver.at) >= len(sent):
                receiver.all_in.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.all_in.wait(), 120)
    finally:
        await producer.stop()
    missing = set(sent) - set(receiver.at)
    if missing:
        raise RuntimeError(f"{len(missing)} alert(s) never reached the webhook")
    return sorted(receiver.at[account] - at for account, at in sent.items())


async def bench_alerts(scale: str, runs: int, bootstrap: str, postgres: str) -> dict[str, Any]:
    from bench.run import spread

    total, seconds = SIZES[scale]
    log = ROOT / "var" / "bench" / "alerts.log"
    rates, p50, p99, rss, cpu = [], [], [], [], []
    for run in range(1, runs + 1):
        say(f"alerts catch-up: run {run}/{runs} ({total:,} score messages)")
        caught_up = await catch_up(bootstrap, postgres, total, log)
        rates.append(caught_up.per_second)
        rss.append(caught_up.peak_rss_mb or 0.0)
        cpu.append(caught_up.cpu_s_per_million or 0.0)
        say(f"alerts catch-up: {rates[-1]:,.0f} messages/s evaluated and queued")
        say(f"alerts open loop at {OPEN_LOOP_RATE:,.0f}/s for {seconds:.0f} s: run {run}/{runs}")
        latencies = await open_loop(bootstrap, postgres, OPEN_LOOP_RATE, seconds, log)
        p50.append(latencies[len(latencies) // 2] * 1000)
        p99.append(latencies[int(len(latencies) * 0.99)] * 1000)
        say(f"alerts open loop: p50 {p50[-1]:.0f} ms, p99 {p99[-1]:.0f} ms")
    at = f"at {OPEN_LOOP_RATE:,.0f} alerts/s, local receiver"
    return {
        "messages": total,
        "rows": [
            {
                "label": "score messages evaluated and alerts queued (catch-up), per second",
                "value": spread(rates),
                "unit": "",
                "digits": 0,
            },
            {
                "label": "peak RSS of the alerts process during the catch-up",
                "value": spread(rss),
                "unit": " MiB",
                "digits": 0,
            },
            {
                "label": "CPU seconds per million score messages (catch-up)",
                "value": spread(cpu),
                "unit": " s",
                "digits": 1,
            },
            {
                "label": f"score message to webhook delivered, p50 ({at})",
                "value": spread(p50),
                "unit": " ms",
                "digits": 0,
            },
            {
                "label": f"score message to webhook delivered, p99 ({at})",
                "value": spread(p99),
                "unit": " ms",
                "digits": 0,
            },
        ],
    }
