"""Scoring replicas as real processes (`python -m services serve scoring`), to kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.scores import ScoreChange
from tests.support.processes import ServiceProcess

SWEEP_DONE = "vitals_scoring_sweep_last_completed_timestamp_seconds"
SWEPT = "vitals_scoring_sweep_accounts_total"


def scoring_replica(instance_id: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """A static group member, restarted under the same instance id."""
    env = {**env, "VITALS_SCORING_INSTANCE_ID": instance_id}
    return ServiceProcess("scoring", env, log_dir, name=f"scoring-{instance_id}")


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


def stop_all(replicas: list[ServiceProcess]) -> None:
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
