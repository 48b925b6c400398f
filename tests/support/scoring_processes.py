"""Scoring replicas as real processes (`python -m services serve scoring`), to kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.scores import ScoreChange
from tests.support.servers import free_port, wait_for

SWEEP_DONE = "vitals_scoring_sweep_last_completed_timestamp_seconds"
SWEPT = "vitals_scoring_sweep_accounts_total"


@dataclass
class ScoringReplica:
    """One replica: a static group member, restarted under the same instance id."""

    instance_id: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"scoring-{self.instance_id}.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {**self.env, "VITALS_SCORING_INSTANCE_ID": self.instance_id}
        command = [sys.executable, "-m", "services", "serve", "scoring", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    async def wait_ready(self, timeout_s: float = 30) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def ready() -> bool:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout_s, f"replica {self.instance_id} to be ready")

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(base_url=self.url) as client:
            text = (await client.get("/metrics")).text
        values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
        return float(values[0]) if values else 0.0

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def replica_env(
    *,
    kafka: str,
    database: str,
    topics: dict[str, str],
    group: str,
    scorecards: Path,
    fixed_clock: str,
    partitions: int,
    batch_max_records: int,
) -> dict[str, str]:
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "SCORING_DATABASE_URL": database,
        "SCORING_CONSUMER_GROUP": group,
        "SCORING_SCORECARDS_PATH": str(scorecards),
        "SCORING_FIXED_CLOCK": fixed_clock,
        "SCORING_BATCH_MAX_RECORDS": str(batch_max_records),
        "EVENTS_TOPIC": topics["events_topic"],
        "SCORES_TOPIC": topics["scores_topic"],
        "DLQ_TOPIC": f"{topics['events_topic']}.dlq",
        "TOPIC_PARTITIONS": str(partitions),
        "STARTUP_RETRY_MAX_S": "1",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("VITALS_")}
    return {**inherited, **{f"VITALS_{k}": v for k, v in settings.items()}}


def stop_all(replicas: list[ScoringReplica]) -> None:
    for replica in replicas:
        if replica.process is not None and replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        if replica.process is not None:
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


async def latest_sequences(bootstrap: str, topic: str, partitions: int) -> dict[str, int]:
    """The sequence of the last score change on ``topic`` for each account (its key)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        latest: dict[str, int] = {}
        while await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=500)
            for record in sorted((r for rs in batch.values() for r in rs), key=_position):
                change = ScoreChange.from_bytes(record.value or b"")
                latest[change.account_id] = change.sequence
        return latest
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _position(record: ConsumerRecord) -> tuple[int, int]:
    return record.partition, record.offset
