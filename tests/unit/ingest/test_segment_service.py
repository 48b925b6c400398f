"""Segment's protocol (a call waits for its user's group call) on the replay's store."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.domain import Held, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.segment.service import (
    Accepted,
    Calls,
    MemorySegmentStore,
    accept,
)
from shared.events import Event
from tests.support.segment_stores import FAULT, FaultyStore

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
WAIT = timedelta(days=7)
LIMITS = Limits()


def _identify(user: str, message_id: str) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": message_id}


def _group(user: str, account: str, message_id: str, at: datetime = NOW) -> dict[str, Any]:
    return {
        "type": "group",
        "userId": user,
        "groupId": account,
        "messageId": message_id,
        "timestamp": at.isoformat(),
    }


def _accept(store: MemorySegmentStore, *bodies: tuple[datetime, list[Any]]) -> Accepted:
    return accept([Calls(calls, at) for at, calls in bodies], store, LIMITS)


def _accounts(items: list[Item]) -> list[tuple[str, str]]:
    events = [item for item in items if isinstance(item, Event)]
    assert len(events) == len(items), items
    return [(e.event_id, e.account_id) for e in events]


def test_a_call_waits_for_its_users_group_call_and_goes_with_it() -> None:
    store = MemorySegmentStore(WAIT)

    first = _accept(store, (NOW, [_identify("u1", "i1")]))
    later = _accept(store, (NOW + timedelta(hours=1), [_group("u1", "acme", "g1")]))

    (held,) = first.items[0]
    assert isinstance(held, Held) and (held.user_id, held.message_id) == ("u1", "i1")
    assert _accounts(later.items[0]) == [("g1", "acme")]
    assert _accounts(later.released) == [("i1", "acme")]
    assert later.released_ids == ["i1"]
    assert store.waiting() == 0


def test_a_call_whose_wait_ended_is_refused_when_its_group_call_comes() -> None:
    store = MemorySegmentStore(WAIT)
    _accept(store, (NOW, [_identify("u1", "i1")]))

    late = NOW + WAIT + timedelta(seconds=1)
    accepted = _accept(store, (late, [_group("u1", "acme", "g1", at=late)]))

    (refused,) = accepted.released
    assert isinstance(refused, Rejection) and refused.reason is Reason.unknown_account
    assert (refused.event_id, "'u1'" in refused.message) == ("i1", True)
    assert accepted.released_ids == []
    assert store.waiting() == 0


def test_a_call_held_twice_waits_once() -> None:
    store = MemorySegmentStore(WAIT)
    _accept(store, (NOW, [_identify("u1", "i1")]), (NOW, [_identify("u1", "i1")]))

    accepted = _accept(store, (NOW, [_group("u1", "acme", "g1")]))

    assert _accounts(accepted.released) == [("i1", "acme")]


def test_a_group_call_in_a_later_body_maps_the_call_an_earlier_body_held() -> None:
    store = MemorySegmentStore(WAIT)

    accepted = _accept(
        store,
        (NOW, [_identify("u1", "i1")]),
        (NOW, [_group("u1", "acme", "g1")]),
    )

    assert _accounts(accepted.items[0]) == [("i1", "acme")]
    assert (accepted.released, store.waiting()) == ([], 0)
    assert accepted.grouped == {"u1": ("acme", NOW)}


def test_the_users_latest_group_call_by_event_time_names_its_account() -> None:
    store = MemorySegmentStore(WAIT)
    earlier = NOW - timedelta(days=1)

    _accept(store, (NOW, [_group("u1", "acme", "g1")]))
    _accept(store, (NOW, [_group("u1", "globex", "g0", at=earlier)]))
    accepted = _accept(store, (NOW, [_identify("u1", "i1")]))

    assert _accounts(accepted.items[0]) == [("i1", "acme")]


def test_a_body_whose_mapping_breaks_is_reported_alone_when_faults_are_isolated() -> None:
    bodies = [Calls([_identify("u1", "i1")], NOW), Calls([_group("u2", "acme", "g2")], NOW)]

    with pytest.raises(ValueError, match=FAULT):
        accept(bodies, FaultyStore(), LIMITS)
    accepted = accept(bodies, FaultyStore(), LIMITS, isolate_faults=True)

    assert list(accepted.faults) == [0] and accepted.items[0] == []
    assert _accounts(accepted.items[1]) == [("g2", "acme")]
