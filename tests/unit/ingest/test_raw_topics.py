from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.domain import Item, Limits, Rejection
from services.ingest.raw_topics import (
    Decoded,
    RawRecord,
    RawTopicsConfig,
    RejectedShare,
    Shape,
    TooManyRejected,
    decode,
    map_segment,
    received_time,
    shape_of,
)
from services.ingest.reasons import Reason
from services.ingest.sources.segment.service import MemorySegmentStore
from shared.events import Event
from tests.support.segment_stores import FaultyStore

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ARRIVED = NOW - timedelta(hours=2)
LIMITS = Limits(max_events=10, max_event_bytes=2048)
MAX_RECORD_BYTES = 4096


def _native(**fields: Any) -> dict[str, Any]:
    return {
        "account_id": "acme",
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": (ARRIVED - timedelta(minutes=1)).isoformat(),
        **fields,
    }


def _cloud_event(**fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "c1",
        "source": "/billing",
        "type": "invoice.viewed",
        "accountid": "acme",
        "time": (ARRIVED - timedelta(minutes=1)).isoformat(),
        "data": {},
        **fields,
    }


def _record(value: Any, *, offset: int = 41, timestamp: datetime = ARRIVED) -> RawRecord:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return RawRecord("usage.raw", 2, offset, raw, int(timestamp.timestamp() * 1000))


def _decode(value: Any, **record: Any) -> Decoded:
    return decode(_record(value, **record), LIMITS, MAX_RECORD_BYTES, NOW)


def _only(decoded: Decoded) -> Item:
    assert decoded.calls is None
    assert len(decoded.items) == 1, decoded.items
    return decoded.items[0]


def _event(item: Item) -> Event:
    assert isinstance(item, Event), item
    return item


def _rejection(item: Item) -> Rejection:
    assert isinstance(item, Rejection), item
    return item


@pytest.mark.parametrize(
    ("document", "shape"),
    [
        (_native(), Shape.native),
        ({"events": [_native()]}, Shape.native),
        ({"type": "track", "userId": "u1", "event": "x"}, Shape.segment),
        ({"batch": [{"type": "track"}]}, Shape.segment),
        (
            {"specversion": "1.0", "type": "com.example.used", "source": "/x", "id": "1"},
            Shape.cloudevents,
        ),
        ({**_native(), "type": "not a segment call"}, Shape.native),
    ],
)
def test_the_shape_is_told_by_its_fields(document: Any, shape: Shape | None) -> None:
    assert shape_of(document) is shape


def test_a_native_event_keeps_its_id_and_was_received_when_it_reached_the_topic() -> None:
    event = _event(_only(_decode(_native(event_id="e-1"))))

    assert (event.event_id, event.account_id) == ("e-1", "acme")
    assert event.received_at == ARRIVED


def test_an_event_without_id_gets_the_same_id_from_its_record_on_every_delivery() -> None:
    first = _event(_only(_decode(_native())))
    again = _event(_only(_decode(_native())))
    later = _event(_only(_decode(_native(), offset=42)))

    assert first.event_id == again.event_id == "kafka:usage.raw/2@41"
    assert later.event_id == "kafka:usage.raw/2@42"


def test_a_native_batch_is_mapped_item_by_item_with_ids_by_position() -> None:
    batch = {"events": [_native(), _native(event_id="given"), _native(kind="nonsense")]}

    items = _decode(batch).items

    assert _event(items[0]).event_id == "kafka:usage.raw/2@41#0"
    assert _event(items[1]).event_id == "given"
    assert _rejection(items[2]).reason is Reason.invalid_event


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"account_id": "acme", ', Reason.malformed_json),
        (b"[1, 2]", Reason.invalid_body),
        (None, Reason.invalid_body),
        ({"events": []}, Reason.invalid_body),
        ({"events": [_native()] * 11}, Reason.too_many_events),
        (_native(name="x" * 3000), Reason.event_too_large),
        (_native(occurred_at=(NOW + timedelta(hours=1)).isoformat()), Reason.event_in_future),
    ],
)
def test_a_record_that_cannot_be_used_is_one_rejection_with_its_bytes(
    value: Any, reason: Reason
) -> None:
    rejection = _rejection(_only(_decode(value)))

    assert rejection.reason is reason
    assert rejection.message
    expected = b"" if value is None else _record(value).value
    assert rejection.original == expected


def test_a_record_over_the_size_limit_is_rejected_before_parsing() -> None:
    value = b"{" + b" " * MAX_RECORD_BYTES + b"}"

    rejection = _rejection(_only(_decode(value)))

    assert rejection.reason is Reason.body_too_large
    assert rejection.original == value
    assert str(len(value)) in rejection.message


def test_a_cloudevent_record_is_mapped_as_over_http_with_its_envelope_id() -> None:
    event = _event(_only(_decode(_cloud_event())))

    assert (event.event_id, event.account_id, event.name) == (
        "/billing#c1",
        "acme",
        "invoice.viewed",
    )
    assert event.received_at == ARRIVED


def test_a_record_of_a_cloudevents_array_is_a_batch_checked_item_by_item() -> None:
    envelope = _cloud_event()
    del envelope["id"]

    items = _decode([_cloud_event(id="c2"), envelope]).items

    assert _event(items[0]).event_id == "/billing#c2"
    rejection = _rejection(items[1])
    assert rejection.reason is Reason.invalid_event
    assert "id" in rejection.message


def test_a_segment_write_key_never_reaches_a_dead_letter() -> None:
    rejection = _rejection(_only(_decode(b'{"writeKey": "vk_secret", "batch": 3}')))

    assert rejection.reason is Reason.invalid_body
    assert b"vk_secret" not in rejection.original


def _store(**accounts: str) -> MemorySegmentStore:
    """A store that knows ``accounts`` (user -> account) from earlier group calls."""
    store = MemorySegmentStore(wait=timedelta(days=7))
    store.remember({user: (account, ARRIVED) for user, account in accounts.items()})
    return store


def _track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "Report Exported", **fields}


def test_segment_calls_are_mapped_across_records_with_a_group_call_informing_later_ones() -> None:
    group = {"type": "group", "userId": "u1", "groupId": "acme", "messageId": "g1"}
    records = [
        _decode(group, offset=1),
        _decode({"batch": [_track(messageId="t1"), _track()]}, offset=2),
        _decode(_track(userId="stranger"), offset=3),
    ]

    mapped = map_segment(records, _store(), LIMITS)

    assert _event(mapped.items[0][0]).account_id == "acme"
    tracked = [_event(item) for item in mapped.items[1]]
    assert [e.event_id for e in tracked] == ["t1", "kafka:usage.raw/2@2#1"]
    assert {e.account_id for e in tracked} == {"acme"}
    assert _rejection(mapped.items[2][0]).reason is Reason.unknown_account
    assert mapped.grouped == {"u1": ("acme", ARRIVED)}


def test_a_segment_call_uses_the_stored_account_of_its_user() -> None:
    mapped = map_segment([_decode(_track(messageId="t1"))], _store(u1="globex"), LIMITS)

    assert _event(mapped.items[0][0]).account_id == "globex"


def test_segment_clock_skew_is_corrected_against_the_time_the_record_arrived() -> None:
    sent = NOW + timedelta(hours=5)
    call = _track(
        messageId="t1",
        context={"groupId": "acme"},
        timestamp=(sent - timedelta(seconds=30)).isoformat(),
        sentAt=sent.isoformat(),
    )

    event = _event(map_segment([_decode(call)], _store(), LIMITS).items[0][0])

    assert event.occurred_at == ARRIVED - timedelta(seconds=30)


def test_the_arrival_time_is_the_record_time_but_never_later_than_now() -> None:
    ahead = _record(b"{}", timestamp=NOW + timedelta(days=1))
    unknown = RawRecord("usage.raw", 0, 0, b"{}", -1)

    assert received_time(_record(b"{}"), NOW) == ARRIVED
    assert received_time(ahead, NOW) == NOW
    assert received_time(unknown, NOW) == NOW


def test_the_rejected_share_trips_only_over_a_full_window_and_counts_nothing_then() -> None:
    share = RejectedShare(max_ratio=0.5, window=3)
    share.check([True, False])  # not a full window yet: never trips

    with pytest.raises(TooManyRejected, match="67% of the last 3"):
        share.check([True, True])
    share.check([False])  # [T, F, F]; had the refused batch counted: [T, T, F], over


def test_a_rejected_share_limit_of_one_never_trips() -> None:
    share = RejectedShare(max_ratio=1.0, window=2)

    share.check([True] * 10)


def test_the_topics_are_a_comma_list_and_empty_means_off() -> None:
    assert RawTopicsConfig().topics == ("vitals.usage.raw", "vitals.billing.raw")
    assert RawTopicsConfig(topics=" a.raw, b.raw ,").topics == ("a.raw", "b.raw")
    assert RawTopicsConfig(topics="").topics == ()


def test_a_record_that_breaks_segment_mapping_is_rejected_and_the_others_still_map() -> None:
    records = [
        _decode(_track(event="boom", messageId="t0"), offset=1),  # its user's account: a fault
        _decode(_track(messageId="t1", context={"groupId": "acme"}), offset=2),
    ]

    mapped = map_segment(records, FaultyStore(), LIMITS)

    rejection = _rejection(mapped.items[0][0])
    assert rejection.reason is Reason.invalid_body
    assert "ValueError: a fault in mapping" in rejection.message
    assert rejection.original == records[0].record.value
    assert _event(mapped.items[1][0]).event_id == "t1"
