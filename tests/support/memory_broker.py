"""A broker in memory for unit tests of the consume spine (``shared.consumer``): topics
of partitions of records, consumer groups whose members share the partitions, and a
consumer with the part of ``AIOKafkaConsumer`` the spine uses.

As with Kafka's eager protocol, a rebalance reaches each member inside its next
``getmany``: it gives up all its partitions (the listener hears of them), and only
once every member has, the partitions are dealt out again and each member's listener
hears of its new ones, before records are fetched. So a member busy with a batch
holds the rebalance up until it asks for more. A member fetches from its position,
which starts where the group committed (or at the beginning) and moves with what it
fetched and with ``seek``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition


@dataclass
class MemoryBroker:
    partitions: int = 3
    logs: dict[TopicPartition, list[ConsumerRecord]] = field(
        default_factory=lambda: defaultdict(list)
    )
    committed: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    members: dict[str, list[MemoryConsumer]] = field(default_factory=lambda: defaultdict(list))
    rebalancing: dict[str, set[int]] = field(default_factory=dict)
    """Per group in a rebalance, the members (by id) that gave their partitions up."""

    def produce(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        chosen = hash(key) % self.partitions if partition is None else partition
        tp = TopicPartition(topic, chosen)
        offset = len(self.logs[tp])
        record = ConsumerRecord(
            topic,
            chosen,
            offset,
            int(time.time() * 1000),
            0,
            key,
            value,
            None,
            len(key),
            len(value),
            (),
        )
        self.logs[tp].append(record)

    def consumer(self, group_id: str) -> MemoryConsumer:
        return MemoryConsumer(self, group_id)

    def join(self, member: MemoryConsumer) -> None:
        self.members[member.group_id].append(member)
        self.rebalance(member.group_id)

    def leave(self, member: MemoryConsumer) -> None:
        group = self.members[member.group_id]
        if member in group:
            group.remove(member)
            self.rebalance(member.group_id)

    def rebalance(self, group_id: str) -> None:
        """Start a rebalance: every member gives its partitions up at its next fetch."""
        self.rebalancing[group_id] = set()
        self._deal_when_all_revoked(group_id)

    def revoked(self, member: MemoryConsumer) -> None:
        self.rebalancing[member.group_id].add(id(member))
        self._deal_when_all_revoked(member.group_id)

    def waits_for(self, member: MemoryConsumer) -> bool:
        """Whether a rebalance waits for ``member`` to give its partitions up."""
        revoked = self.rebalancing.get(member.group_id)
        return revoked is not None and id(member) not in revoked

    def _deal_when_all_revoked(self, group_id: str) -> None:
        group = self.members[group_id]
        if {id(m) for m in group} - self.rebalancing[group_id]:
            return
        del self.rebalancing[group_id]
        topics = sorted({t for m in group for t in m.topics})
        every = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
        for index, member in enumerate(group):
            member.granted = {tp for i, tp in enumerate(every) if i % len(group) == index}


class MemoryConsumer:
    def __init__(self, broker: MemoryBroker, group_id: str) -> None:
        self.broker = broker
        self.group_id = group_id
        self.topics: list[str] = []
        self._listener: ConsumerRebalanceListener | None = None
        self._assigned: set[TopicPartition] = set()
        self.granted: set[TopicPartition] | None = None
        """Partitions dealt to this member, taken at its next fetch."""
        self._positions: dict[TopicPartition, int] = {}
        self._polled: dict[TopicPartition, int] = {}
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True
        self.broker.leave(self)

    def subscribe(self, topics: Iterable[str], listener: ConsumerRebalanceListener) -> None:
        self.topics = list(topics)
        self._listener = listener
        self.broker.join(self)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions[tp] = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self.broker.committed[(self.group_id, tp)] = offset

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.broker.logs[tp]) if tp in self._polled else None

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self._polled.get(tp)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        await self._rebalance()
        fetched: dict[TopicPartition, list[ConsumerRecord]] = {}
        room = max_records or 500
        for tp in sorted(self._assigned, key=lambda t: (t.topic, t.partition)):
            position = self._positions.setdefault(tp, self._start_of(tp))
            records = self.broker.logs[tp][position : position + room]
            self._polled[tp] = int(time.time() * 1000)
            if records:
                fetched[tp] = records
                self._positions[tp] = position + len(records)
                room -= len(records)
        if not fetched:
            await asyncio.sleep(min(timeout_ms, 10) / 1000)
        return fetched

    def _start_of(self, tp: TopicPartition) -> int:
        return self.broker.committed.get((self.group_id, tp), 0)

    async def _rebalance(self) -> None:
        assert self._listener is not None
        if self.broker.waits_for(self):
            revoked, self._assigned = self._assigned, set()
            self._positions.clear()
            if revoked:
                await self._listener.on_partitions_revoked(revoked)
            self.broker.revoked(self)
        if self.granted is not None:
            self._assigned, self.granted = self.granted, None
            if self._assigned:
                await self._listener.on_partitions_assigned(set(self._assigned))
