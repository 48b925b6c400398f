"""Consumer lag, measured beside the consumer rather than by it.

A probe asks the broker for the end of every partition of the consumer's topics and
reads the positions the consumer trusts (its database offsets, or the group's
committed offsets), then sets the lag gauges. Because it runs on its own schedule,
the lag keeps rising while the consumer is stopped, restarting or stuck, which is
when an SRE needs to see it. While the positions cannot be read (the database is
away), the last ones read stand, so the lag still grows with the end of the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError

from shared.db import SessionFactory
from shared.offsets import load_offsets
from shared.settings import VitalsSettings

log = logging.getLogger(__name__)

SetLag = Callable[[TopicPartition, int], None]
# What one measurement can meet while the broker or the database is away.
TRANSIENT = (KafkaError, SQLAlchemyError, OSError, TimeoutError)


class PositionStore(Protocol):
    """Where a consumer group's next offsets are kept."""

    async def read(
        self, partitions: set[TopicPartition], admin: AIOKafkaAdminClient
    ) -> dict[TopicPartition, int]: ...


class DatabasePositions:
    """Positions in a service's offsets table, written with the state they produced."""

    def __init__(self, sessions: SessionFactory, table: Table, group: str) -> None:
        self._sessions = sessions
        self._table = table
        self._group = group

    async def read(
        self, partitions: set[TopicPartition], admin: AIOKafkaAdminClient
    ) -> dict[TopicPartition, int]:
        async with self._sessions() as session:
            return await load_offsets(session, self._table, self._group, partitions)


class CommittedPositions:
    """Positions the group committed to Kafka."""

    def __init__(self, group: str) -> None:
        self._group = group

    async def read(
        self, partitions: set[TopicPartition], admin: AIOKafkaAdminClient
    ) -> dict[TopicPartition, int]:
        committed = await admin.list_consumer_group_offsets(
            self._group, partitions=sorted(partitions)
        )
        # -1: nothing committed yet, so the group starts from the beginning.
        return {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


class LagProbe:
    """Sets ``set_lag`` for every partition of ``topics`` every ``interval_s``."""

    def __init__(
        self,
        settings: VitalsSettings,
        *,
        role: str,
        topics: Sequence[str],
        positions: PositionStore,
        set_lag: SetLag,
    ) -> None:
        self._settings = settings
        self._client_id = f"{settings.kafka_client_id_prefix}-{role}-lag"
        self._role = role
        self._topics = list(topics)
        self._positions = positions
        self._set_lag = set_lag
        self._interval_s = settings.lag_probe_interval_s
        self._known: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        """Measure until cancelled; a broker away is waited for, never fatal."""
        servers = self._settings.kafka_bootstrap_servers
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id=self._client_id)
            # No group: it only asks where partitions begin and end.
            offsets = AIOKafkaConsumer(
                bootstrap_servers=servers, client_id=self._client_id, enable_auto_commit=False
            )
            try:
                await admin.start()
                await offsets.start()
                while True:
                    await self.measure(admin, offsets)
                    await asyncio.sleep(self._interval_s)
            except TRANSIENT as exc:
                log.debug("%s lag probe reconnecting: %s", self._role, exc)
            except Exception:
                # A fault of ours in a probe must not take the service out of rotation.
                log.warning("%s lag probe failed; starting it again", self._role, exc_info=True)
            finally:
                await _close_quietly(admin, offsets)
            await asyncio.sleep(self._interval_s)

    async def measure(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> None:
        partitions = {
            TopicPartition(topic["topic"], partition["partition"])
            for topic in await admin.describe_topics(self._topics)
            if topic["error_code"] == 0  # else not created yet
            for partition in topic["partitions"]
        }
        if not partitions:
            return
        ends = await offsets.end_offsets(list(partitions))
        starts = await offsets.beginning_offsets(list(partitions))
        try:
            self._known.update(await self._positions.read(partitions, admin))
        except TRANSIENT as exc:
            log.debug("%s lag probe kept the last positions: %s", self._role, exc)
        for tp in partitions:
            # Below the log start (retention deleted it), a consumer resumes at the start.
            position = max(self._known.get(tp, starts[tp]), starts[tp])
            self._set_lag(tp, max(ends[tp] - position, 0))


async def _close_quietly(admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> None:
    try:
        await offsets.stop()
        await admin.close()
    except KafkaError as exc:
        log.debug("lag probe clients did not stop cleanly: %s", exc)
