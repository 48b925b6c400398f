"""History in: JSONL files of native events, Segment calls or Stripe Event objects,
read a line at a time and mapped by ingest's own code into events, in event-time order.

Each file is read lazily, so memory does not grow with its size. Files are merged by
time; a file is expected in the order it was exported (by time), and a line out of
order is still applied, as a late event is in production. A line that cannot be used
is counted by its reason and skipped, never fatal.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from services.ingest.domain import BodyRejected, Held, Item, Limits, Rejection
from services.ingest.sources.native.mapping import native_item
from services.ingest.sources.segment.service import Calls, MemorySegmentStore, accept
from services.ingest.sources.stripe.mapping import (
    StripeAccounts,
    customer_of,
    map_stripe,
    needs_known_account,
    read_stripe_event,
)
from shared.events import Event

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Intake:
    """What was read: bytes (for progress), lines, and rejections by reason."""

    bytes_read: int = 0
    lines: int = 0
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1


class Memory:
    """What ingest remembers across requests, kept in memory for a replay; a Segment
    call waits ``wait`` for its user's group call."""

    def __init__(self, wait: timedelta = timedelta(days=7)) -> None:
        self.stripe_customers: dict[str, str] = {}
        self.segment = MemorySegmentStore(wait)

    def never_grouped(self) -> int:
        return self.segment.waiting()


Timed = tuple[datetime, int, Event]  # (event time, tie-break, event)
Mapper = Callable[[Any, bytes], list[Item]]


def native_events(path: Path, intake: Intake, limits: Limits) -> Iterator[Timed]:
    def mapped(document: Any, _: bytes) -> list[Item]:
        received = _time(document, "received_at") or _time(document, "occurred_at")
        return [native_item(document, received or FAR_PAST, limits)]

    return _events(path, intake, mapped)


def segment_events(path: Path, intake: Intake, limits: Limits, memory: Memory) -> Iterator[Timed]:
    def mapped(call: Any, _: bytes) -> list[Item]:
        accepted = accept([Calls([call], _received(call))], memory.segment, limits)
        (items,) = accepted.items
        return [*items, *accepted.released] if accepted.released else items

    return _events(path, intake, mapped)


def stripe_events(
    path: Path, intake: Intake, limits: Limits, memory: Memory, accounts: StripeAccounts
) -> Iterator[Timed]:
    def mapped(_: Any, line: bytes) -> list[Item]:
        event = read_stripe_event(line)
        customer = customer_of(event) if needs_known_account(event) else None
        known = memory.stripe_customers.get(customer) if customer else None
        received = event.created or FAR_PAST
        result = map_stripe(event, accounts, known, received, limits)
        learned = result.learned
        if learned is not None and learned.account_id is not None:
            memory.stripe_customers[learned.customer_id] = learned.account_id
        return result.items

    return _events(path, intake, mapped)


def merged(streams: list[Iterator[Timed]]) -> Iterator[Event]:
    """Every stream's events, by event time."""
    for _, _, event in heapq.merge(*streams, key=operator.itemgetter(0, 1)):
        yield event


def _events(path: Path, intake: Intake, mapped: Mapper) -> Iterator[Timed]:
    with path.open("rb") as file:
        yield from _lines(file, intake, mapped)


def _lines(file: BinaryIO, intake: Intake, mapped: Mapper) -> Iterator[Timed]:
    for line in file:
        intake.bytes_read += len(line)
        line = line.strip()
        if not line:
            continue
        intake.lines += 1
        for item in _items(line, intake, mapped):
            if isinstance(item, Rejection):
                intake.reject(item.reason.value)
            elif isinstance(item, Held):
                continue  # counted when released, or at the end as never grouped
            else:
                intake.events += 1
                yield item.occurred_at, intake.lines, item


def _items(line: bytes, intake: Intake, mapped: Mapper) -> list[Item]:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        intake.reject("malformed_json")
        return []
    try:
        return mapped(document, line)
    except BodyRejected as exc:
        return [exc.rejection]


def _received(call: Any) -> datetime:
    """When Segment received the call (exports keep ``receivedAt``), else its own times."""
    for key in ("receivedAt", "sentAt", "timestamp", "originalTimestamp"):
        if (found := _time(call, key)) is not None:
            return found
    return FAR_PAST


def _time(document: Any, key: str) -> datetime | None:
    """``document[key]`` as a time in UTC, or None if it is not an ISO 8601 time with an
    offset, or is one that UTC cannot hold (the last day of year 9999, behind UTC)."""
    if not isinstance(document, dict) or not isinstance(value := document.get(key), str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
