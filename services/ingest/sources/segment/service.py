"""Segment's protocol, once: a call waits for its user's ``group`` call.

:func:`accept` takes the calls of one or more bodies (an HTTP request, the records of
a raw-topic batch, a line of a backtest file), maps them with the users' accounts the
store knows, remembers the accounts new ``group`` calls name, holds the calls whose
user has no account yet, and releases the calls that waited for the users it grouped.

The HTTP route and the raw-topic consumer run it on the ingest database
(``store.PostgresSegmentStore``, inside the transaction that claims the event ids),
``vitals backtest`` on :class:`MemorySegmentStore`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.ingest.domain import Held, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.segment import mapping

Grouped = dict[str, tuple[str, datetime]]
"""User -> (account, time of the user's group call)."""


@dataclass(frozen=True)
class WaitingCall:
    """A call kept until its user's ``group`` call names the account."""

    message_id: str
    user_id: str
    call: bytes
    received_at: datetime


@dataclass(frozen=True)
class Waited:
    """Calls a group call lets go: to map now, and those whose wait had ended."""

    released: list[WaitingCall] = field(default_factory=list)
    expired: list[WaitingCall] = field(default_factory=list)


class SegmentStore(Protocol):
    """What the protocol keeps between calls."""

    def accounts(self) -> Mapping[str, str]:
        """User -> account, for at least the users of the calls being accepted."""

    def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        """Keep each user's account, unless a later group call (by event time) named one."""

    def hold(self, calls: Sequence[WaitingCall]) -> None:
        """Keep ``calls`` until their users' group calls; a call kept already stays as is."""

    def release(self, users: Collection[str], now: datetime) -> Waited:
        """Take out the calls waiting for ``users``."""


# Calls and Accepted are plain classes: compiled (mypyc), their __init__ is native,
# where a dataclass's is made at import and runs interpreted, once a backtest line here.


class Calls:
    """The calls of one body, received together."""

    def __init__(self, messages: Sequence[object], received_at: datetime) -> None:
        self.messages = messages
        self.received_at = received_at


class Accepted:
    """What :func:`accept` made of the calls."""

    def __init__(
        self, items: list[list[Item]], grouped: Grouped, faults: dict[int, Exception]
    ) -> None:
        self.items = items
        """Per body, an item per call: an event, a rejection, or Held while it waits."""
        self.grouped = grouped
        """What these calls' group calls taught the store."""
        self.faults = faults
        """Bodies whose mapping raised (with ``isolate_faults``): left out, by index."""
        self.released: list[Item] = []
        """Calls of earlier bodies that these released: mapped, or refused when their
        wait had ended."""
        self.released_ids: list[str] = []
        """The message ids of the released calls: to forget once what they became is
        stored."""


def accept(
    bodies: Sequence[Calls],
    store: SegmentStore,
    limits: Limits,
    *,
    isolate_faults: bool = False,
) -> Accepted:
    """Map ``bodies`` in order (a group call informs the calls after it, in later bodies
    too), then hold, remember and release through ``store``.

    ``isolate_faults``: a body whose mapping raises is reported in ``faults`` and the
    others go on, so that one poison record cannot stop a raw topic's partition.
    """
    accepted = _map_bodies(bodies, store.accounts(), limits, isolate_faults)
    if not accepted.grouped:  # no group call: nothing that waited can go
        _hold(store, accepted.items, bodies)
        return accepted
    named = {user: account for user, (account, _) in accepted.grouped.items()}
    if len(bodies) > 1:
        # A call held in one body whose user's group call came in a later one is mapped
        # now, rather than kept and released by these same bodies.
        accepted.items = [
            mapping.map_held(found, named, body.received_at, limits)
            for found, body in zip(accepted.items, bodies, strict=True)
        ]
    store.remember(accepted.grouped)
    _hold(store, accepted.items, bodies)
    waited = store.release(named.keys(), max(body.received_at for body in bodies))
    accepted.released = _released(waited, named, limits)
    accepted.released_ids = [call.message_id for call in waited.released]
    return accepted


def _hold(store: SegmentStore, items: list[list[Item]], bodies: Sequence[Calls]) -> None:
    waiting = [
        WaitingCall(item.message_id, item.user_id, item.original, body.received_at)
        for index, body in enumerate(bodies)
        for item in items[index]
        if isinstance(item, Held)
    ]
    if waiting:
        store.hold(waiting)


def _released(waited: Waited, named: Mapping[str, str], limits: Limits) -> list[Item]:
    calls = [(call.call, call.received_at) for call in waited.released]
    refused = [never_grouped(call) for call in waited.expired]
    return [*mapping.released(calls, named, limits), *refused]


def never_grouped(call: WaitingCall) -> Rejection:
    """A call whose wait ended before its user's group call came."""
    message = f"no group call for user {call.user_id!r} came while the call waited"
    return Rejection(Reason.unknown_account, message, call.call, event_id=call.message_id)


def _map_bodies(
    bodies: Sequence[Calls], known: Mapping[str, str], limits: Limits, isolate_faults: bool
) -> Accepted:
    result = Accepted([], {}, {})
    # The accounts of earlier bodies' group calls shadow ``known``, in a copy made once a
    # body before the last groups someone: one body (a request, a backtest line) reads
    # ``known`` itself.
    accounts, own = known, None
    last = len(bodies) - 1
    for index, body in enumerate(bodies):
        try:
            mapped = mapping.map_messages(body.messages, accounts, body.received_at, limits)
            items = mapping.settled(body.messages, mapped, body.received_at, limits)
        except Exception as exc:
            if not isolate_faults:
                raise
            result.items.append([])
            result.faults[index] = exc
            continue
        result.items.append(items)
        result.grouped.update(mapped.grouped)
        if mapped.accounts and index < last:
            if own is None:
                accounts = own = dict(known)
            own.update(mapped.accounts)
    return result


class MemorySegmentStore:
    """The store of a replay, in memory. As no sweep runs, a call's wait is checked
    when its group call comes: past ``wait``, it is refused instead of released."""

    def __init__(self, wait: timedelta) -> None:
        self._wait = wait
        self._accounts: dict[str, str] = {}
        self._grouped_at: dict[str, datetime] = {}
        self._waiting: dict[str, dict[str, WaitingCall]] = {}
        """User -> message id -> call, in the order held."""

    def accounts(self) -> Mapping[str, str]:
        return self._accounts

    def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        for user, (account, grouped_at) in grouped.items():
            last = self._grouped_at.get(user)
            if last is None or last <= grouped_at:
                self._accounts[user] = account
                self._grouped_at[user] = grouped_at

    def hold(self, calls: Sequence[WaitingCall]) -> None:
        for call in calls:
            self._waiting.setdefault(call.user_id, {}).setdefault(call.message_id, call)

    def release(self, users: Collection[str], now: datetime) -> Waited:
        calls = [c for user in users for c in self._waiting.pop(user, {}).values()]
        if not calls:
            return Waited()
        since = now - self._wait
        return Waited(
            [c for c in calls if c.received_at >= since],
            [c for c in calls if c.received_at < since],
        )

    def waiting(self) -> int:
        """How many calls wait now: at the end of a replay, those never grouped."""
        return sum(len(calls) for calls in self._waiting.values())
