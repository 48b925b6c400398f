"""The measurements of `make bench`, each on the real local Kafka and PostgreSQL.

Every consumer measurement reads the same pre-loaded topic from the beginning with a
fresh consumer group, and watches its *durable* position: for Vitals the offsets it
stores in PostgreSQL with the state, for the peer the offsets Quix Streams commits
with its state checkpoint. Rate = events made durable / seconds between the first
and the last observed move of that position, so process start-up and rebalance are
left out alike for both.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring.models import consumer_offsets
from shared.db import create_engine
from shared.kafka import wait_until_served
from tests.support.infra import create_database, drop_database
from tests.support.processes import metric_value

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.25
STARTUP_S = 60.0  # longest a consumer under test may take to make its first record durable


@dataclass
class Throughput:
    events: int
    seconds: float
    peak_rss_mb: float | None = None
    cpu_s: float | None = None

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_s_per_million(self) -> float | None:
        if self.cpu_s is None or not self.events:
            return None
        return self.cpu_s / self.events * 1_000_000


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        await wait_until_served(admin, [topic])
    finally:
        await admin.close()


async def load_topic(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> Throughput:
    """Produce every record (acks=all, idempotent) and wait for the acknowledgements."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1 << 20,
        compression_type=None,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for start in range(0, len(records), 20_000):
            chunk = records[start : start + 20_000]
            futures = [await producer.send(topic, value=v, key=k) for k, v in chunk]
            await asyncio.gather(*futures)
            say(f"loaded {start + len(chunk):,} / {len(records):,}")
    finally:
        await producer.stop()
    return Throughput(len(records), time.perf_counter() - started)


async def ceiling(bootstrap: str, topic: str, partitions: int, total: int) -> Throughput:
    """Raw aiokafka consume + orjson decode of every record: no Python consumer beats it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        seen, started = 0, time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        return Throughput(seen, time.perf_counter() - started)
    finally:
        await consumer.stop()


async def watch_progress(
    position: Callable[[], Awaitable[int]],
    total: int,
    cap_s: float,
    alive: Callable[[], bool],
    label: str,
) -> Throughput:
    """Rate of a durable position from the poll before its first move to its last move,
    over at most ``cap_s`` from that poll. Starting up (schema, group join, first fetch)
    counts neither in the rate nor against the cap: on a loaded machine it alone can take
    longer than a small scale's cap; it may take ``STARTUP_S``."""
    first: tuple[float, int] | None = None
    last: tuple[float, int] = (time.perf_counter(), 0)
    polled = last
    startup_deadline = time.perf_counter() + STARTUP_S
    next_report = time.perf_counter() + 5
    while last[1] < total:
        now = time.perf_counter()
        if first is None and now > startup_deadline:
            raise RuntimeError(f"{label} made nothing durable within {STARTUP_S:.0f}s")
        if first is not None and now > first[0] + cap_s:
            break
        if not alive():
            raise RuntimeError(f"{label} exited before it caught up")
        done = await position()
        if done > last[1]:
            first = first or polled  # the poll before the first move, not the start
            last = (now, done)
        polled = (now, done)
        if now >= next_report:
            say(f"{label}: {done:,} / {total:,} durable")
            next_report = now + 5
        await asyncio.sleep(POLL_S)
    assert first is not None
    return Throughput(last[1] - first[1], last[0] - first[0])


def process_stats(pid: int) -> tuple[float | None, float | None]:
    """(peak RSS in MiB, CPU seconds) of a live process and its live children (the
    workers of ``--workers N``), from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None, None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        children = []
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    peak, cpu = peak_kb / 1024, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for child in children:
        child_peak, child_cpu = process_stats(int(child))
        peak += child_peak or 0.0
        cpu += child_cpu or 0.0
    return peak, cpu


async def start_process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *command, env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)


async def migrate(service: str, env: dict[str, str], log: Path) -> None:
    command = [sys.executable, "-m", "services", "migrate", service]
    process = await start_process(command, log, env)
    if await process.wait() != 0:
        raise RuntimeError(f"vitals migrate failed; see {log}")


def _service_env(bootstrap: str, topic: str, group: str, database: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EVENTS_TOPIC": topic,
        "SCORES_TOPIC": f"bench.{run}.scores",
        "DLQ_TOPIC": f"bench.{run}.dlq",
        "SCORING_CONSUMER_GROUP": group,
        "SCORING_DATABASE_URL": database,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "STARTUP_RETRY_MAX_S": "1",
    }
    return {**os.environ, **{f"VITALS_{k}": v for k, v in settings.items()}}


@dataclass
class ScoringUnderTest:
    """A scoring process on a fresh database and consumer group, and its durable position."""

    env: dict[str, str]
    group: str
    log: Path
    engine: AsyncEngine
    process: asyncio.subprocess.Process | None = None
    port: int = 0

    async def start(self) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "services", "serve", "scoring", "--port", str(self.port)]
        self.process = await start_process(command, self.log, self.env)

    async def metric(self, name: str) -> float | None:
        """An unlabelled metric from the process's ``/metrics``; None while it is not up."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.TransportError:
            return None
        return metric_value(text, name)

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def durable(self) -> int:
        async with self.engine.connect() as connection:
            query = select(func.coalesce(func.sum(consumer_offsets.c.next_offset), 0)).where(
                consumer_offsets.c.consumer_group == self.group
            )
            return int(await connection.scalar(query) or 0)

    async def by_partition(self) -> dict[int, int]:
        query = select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
            consumer_offsets.c.consumer_group == self.group
        )
        async with self.engine.connect() as connection:
            return {partition: offset for partition, offset in await connection.execute(query)}


class UnderTest(Protocol):
    """A consumer whose durable position per partition can be read."""

    async def durable(self) -> int: ...

    async def by_partition(self) -> dict[int, int]: ...


@dataclass
class PeerUnderTest:
    """The Quix Streams peer: its durable position is the offsets it commits with its
    state checkpoint (changelog and output flushed first)."""

    group: str
    admin: AIOKafkaAdminClient
    process: asyncio.subprocess.Process

    async def durable(self) -> int:
        return sum((await self.by_partition()).values())

    async def by_partition(self) -> dict[int, int]:
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


@asynccontextmanager
async def scoring_under_test(
    bootstrap: str, postgres_admin: str, topic: str, log: Path
) -> AsyncIterator[ScoringUnderTest]:
    database = await create_database(postgres_admin)
    group = f"bench-scoring-{uuid.uuid4().hex[:8]}"
    env = _service_env(bootstrap, topic, group, database)
    await migrate("scoring", env, log)
    scoring = ScoringUnderTest(env, group, log, create_engine(database))
    try:
        yield scoring
    finally:
        if scoring.process is not None:
            await stop_process(scoring.process)
        await scoring.engine.dispose()
        await drop_database(postgres_admin, database)


async def vitals_scoring(
    bootstrap: str, postgres_admin: str, topic: str, total: int, cap_s: float, log: Path
) -> Throughput:
    """One scoring process catching up on the topic into a fresh PostgreSQL database."""
    async with scoring_under_test(bootstrap, postgres_admin, topic, log) as scoring:
        await scoring.start()
        result = await watch_progress(
            scoring.durable, total, cap_s, scoring.alive, "vitals scoring"
        )
        assert scoring.process is not None
        result.peak_rss_mb, result.cpu_s = process_stats(scoring.process.pid)
        return result


RECOVERY_MARK = 2_000  # events durable before the kill: mid-stream, and quick to reach


async def vitals_recovery(
    bootstrap: str, postgres_admin: str, topic: str, total: int, log: Path, static: bool
) -> float:
    """Seconds from a SIGKILL of scoring mid-stream until a restarted process makes
    progress durable again (start-up, rebalance, state load and the first flush).
    ``static``: a static group member (VITALS_SCORING_INSTANCE_ID), which gets its
    partitions back at once instead of after the broker's session timeout."""
    async with scoring_under_test(bootstrap, postgres_admin, topic, log) as scoring:
        if static:
            scoring.env["VITALS_SCORING_INSTANCE_ID"] = f"{scoring.group}-0"
        await scoring.start()
        mark = min(total // 10, RECOVERY_MARK)
        await _until(lambda: _beyond(scoring.durable, mark), 120, "first progress")
        assert scoring.process is not None
        scoring.process.kill()
        killed_at = time.perf_counter()
        await scoring.process.wait()
        at_kill = await scoring.durable()
        await scoring.start()
        await _until(lambda: _beyond(scoring.durable, at_kill + 1), 120, "recovery")
        return time.perf_counter() - killed_at


async def until_durable(scoring: ScoringUnderTest, events: int, timeout_s: float) -> None:
    await _until(lambda: _beyond(scoring.durable, events), timeout_s, "catch-up")


async def _beyond(position: Callable[[], Awaitable[int]], mark: int) -> bool:
    return await position() >= mark


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.perf_counter() + timeout_s
    while not await check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no {what} within {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def quix_running(
    bootstrap: str, topic: str, guarantee: str, log: Path
) -> AsyncIterator[PeerUnderTest]:
    """The Quix Streams peer consuming ``topic``, in its own virtualenv."""
    run = uuid.uuid4().hex[:8]
    group = f"bench-quix-{run}"
    python = ROOT / ".venv-peer" / "bin" / "python"
    command = [
        str(python),
        str(ROOT / "bench" / "peer" / "quix_health.py"),
        f"--broker={bootstrap}",
        f"--topic={topic}",
        f"--group={group}",
        f"--out=bench.{run}.peer-scores",
        f"--state-dir={ROOT / 'var' / 'bench' / run}",
        f"--guarantee={guarantee}",
        f"--commit-interval={PEER_COMMIT_INTERVAL_S}",
        "--idle-stop-s=600",
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    process = await start_process(command, log)
    try:
        yield PeerUnderTest(group, admin, process)
    finally:
        await stop_process(process)
        await admin.close()


PEER_COMMIT_INTERVAL_S = 1.0


async def quix_peer(
    bootstrap: str, topic: str, total: int, cap_s: float, guarantee: str, log: Path
) -> Throughput:
    """The Quix Streams peer catching up on the topic."""
    async with quix_running(bootstrap, topic, guarantee, log) as peer:
        result = await watch_progress(
            peer.durable,
            total,
            cap_s,
            lambda: peer.process.returncode is None,
            f"quix peer ({guarantee})",
        )
        result.peak_rss_mb, result.cpu_s = process_stats(peer.process.pid)
        return result


@asynccontextmanager
async def vitals_running(
    bootstrap: str, postgres_admin: str, topic: str, log: Path
) -> AsyncIterator[ScoringUnderTest]:
    async with scoring_under_test(bootstrap, postgres_admin, topic, log) as scoring:
        await scoring.start()
        yield scoring


@dataclass(frozen=True)
class HttpShape:
    """How a batch of events is posted: path and body."""

    path: str
    key: str  # the body's list field

    def body(self, batch: list[dict[str, object]]) -> bytes:
        return orjson.dumps({self.key: batch})


NATIVE = HttpShape("/v1/events", "events")
SEGMENT_BATCH = HttpShape("/v1/batch", "batch")


async def ingest_http(
    bootstrap: str,
    postgres_admin: str,
    events: list[dict[str, object]],
    shape: HttpShape,
    batch_size: int,
    concurrency: int,
    log: Path,
    rate: float | None = None,
    workers: int = 1,
) -> tuple[Throughput, list[float]]:
    """Post ``events`` in batches from ``concurrency`` clients, as fast as answered or,
    with ``rate``, on a fixed schedule of events/s; the rate and request latencies."""
    run = uuid.uuid4().hex[:8]
    port = free_port()
    database = await create_database(postgres_admin)
    try:
        env = _service_env(bootstrap, f"bench.{run}.events", "unused", "sqlite+aiosqlite://")
        env["VITALS_INGEST_DATABASE_URL"] = database
        await migrate("ingest", env, log)
        command = [sys.executable, "-m", "services", "serve", "ingest", "--port", str(port)]
        command += ["--workers", str(workers)]
        process = await start_process(command, log, env)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                await wait_ready(f"http://127.0.0.1:{port}", process, workers)
                batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
                started = time.perf_counter()
                latencies = await _post_batches(client, shape, batches, concurrency, rate)
                result = Throughput(len(events), time.perf_counter() - started)
            result.peak_rss_mb, result.cpu_s = process_stats(process.pid)
            return result, latencies
        finally:
            await stop_process(process)
    finally:
        await drop_database(postgres_admin, database)


async def _post_batches(
    client: httpx.AsyncClient,
    shape: HttpShape,
    batches: list[list[dict[str, object]]],
    concurrency: int,
    rate: float | None,
) -> list[float]:
    queue: asyncio.Queue[tuple[float | None, bytes]] = asyncio.Queue()
    latencies: list[float] = []
    started = time.perf_counter()
    for n, batch in enumerate(batches):
        due = started + n * len(batch) / rate if rate else None
        queue.put_nowait((due, shape.body(batch)))

    async def client_loop() -> None:
        while not queue.empty():
            due, body = queue.get_nowait()
            if due is not None:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            # Latency counts from when the batch was due: a late send is the server's fault.
            sent = due if due is not None else time.perf_counter()
            for attempt in range(1, SEND_ATTEMPTS + 1):
                response = await client.post(
                    shape.path, content=body, headers={"content-type": "application/json"}
                )
                if response.status_code != 503 or attempt == SEND_ATTEMPTS:
                    break
                # As a sender should: wait as told and send the same events again.
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            latencies.append(time.perf_counter() - sent)
            if response.status_code not in (200, 202):
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text}")

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies


async def wait_ready(url: str, process: asyncio.subprocess.Process, workers: int = 1) -> None:
    """Until ``/readyz`` answers 200 on several new connections in a row: with several
    workers, each connection reaches one of them."""
    deadline = time.perf_counter() + 60
    ready_in_a_row = 0
    while time.perf_counter() < deadline:
        if process.returncode is not None:
            raise RuntimeError("the service exited during start-up; see var/bench/*.log")
        try:
            async with httpx.AsyncClient(base_url=url) as probe:
                ready = (await probe.get("/readyz")).status_code == 200
        except httpx.TransportError:
            ready = False
        ready_in_a_row = ready_in_a_row + 1 if ready else 0
        if ready_in_a_row >= 5 * workers:
            return
        await asyncio.sleep(0.05 if ready else 0.2)
    raise RuntimeError("the service was not ready within 60s")


SEND_ATTEMPTS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OpenLoop:
    """Events produced at a fixed rate while one scoring process consumes them."""

    rate: float
    produced: int
    latencies_s: list[float]
    lag_at_half: int
    lag_at_end: int

    @property
    def sustained(self) -> bool:
        """Lag did not grow over the second half, by more than one second of events: a
        position that moves once a batch or a commit interval jitters by that much."""
        return self.lag_at_end <= self.lag_at_half + self.rate

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


async def open_loop(
    bootstrap: str,
    records: list[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
    partitions: int,
    running: Callable[[str], AbstractAsyncContextManager[UnderTest]],
) -> OpenLoop:
    """Produce at ``rate`` for ``seconds`` to a new topic that ``running`` consumes;
    latency of every event from its send to the moment the consumer's durable offset
    of its partition passed it (polled every 20 ms)."""
    topic = f"bench.{uuid.uuid4().hex[:8]}.open-loop"
    await create_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with running(topic) as system:
            warm_up = records[:100]
            await asyncio.gather(*[await producer.send(topic, value=v, key=k) for k, v in warm_up])
            await _until(lambda: _beyond(system.durable, len(warm_up)), 120, "warm-up")
            moves: dict[int, list[tuple[float, int]]] = {p: [] for p in range(partitions)}
            stop = asyncio.Event()
            poller = asyncio.create_task(_poll_positions(system, moves, stop))
            sent, lags = await _produce_at(producer, topic, records[100:], rate, seconds, system)
            produced = len(warm_up) + len(sent)
            await _until(lambda: _beyond(system.durable, produced), 120, "catch-up")
            stop.set()
            await poller
    finally:
        await producer.stop()
    positions = {p: [next_offset for _, next_offset in history] for p, history in moves.items()}
    latencies = [_durable_after(moves[p], positions[p], o) - t for t, p, o in sent]
    return OpenLoop(rate, len(sent), latencies, lags[0], lags[1])


async def _produce_at(
    producer: AIOKafkaProducer,
    topic: str,
    records: list[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
    system: UnderTest,
) -> tuple[list[tuple[float, int, int]], tuple[int, int]]:
    """Send on a fixed schedule (10 ms ticks); (send time, partition, offset) of each,
    and the lag (sent - durable) at half time and at the end."""
    started = time.perf_counter()
    pending: list[tuple[float, asyncio.Future[Any]]] = []
    lags: list[int] = []
    index, tick = 0, 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = min(len(records), int(elapsed * rate))
        for key, value in records[index:due]:
            pending.append((time.perf_counter(), await producer.send(topic, value=value, key=key)))
        index = due
        tick += 1
        if not lags and elapsed >= seconds / 2:
            lags.append(index + 100 - await system.durable())
        await asyncio.sleep(max(0.0, started + tick * 0.01 - time.perf_counter()))
    lags.append(index + 100 - await system.durable())
    sent = []
    for sent_at, future in pending:
        metadata = await future
        sent.append((sent_at, metadata.partition, metadata.offset))
    return sent, (lags[0], lags[-1])


async def _poll_positions(
    system: UnderTest, moves: dict[int, list[tuple[float, int]]], stop: asyncio.Event
) -> None:
    while True:
        stopping = stop.is_set()  # read before the sample: the last one sees the end
        now = time.perf_counter()
        for partition, next_offset in (await system.by_partition()).items():
            history = moves.setdefault(partition, [])
            if not history or next_offset > history[-1][1]:
                history.append((now, next_offset))
        if stopping:
            return
        await asyncio.sleep(0.02)


def _durable_after(history: list[tuple[float, int]], positions: list[int], offset: int) -> float:
    """When the durable position of a partition first passed ``offset``."""
    index = bisect.bisect_right(positions, offset)
    if index == len(history):
        raise RuntimeError(f"offset {offset} was never made durable")
    return history[index][0]
