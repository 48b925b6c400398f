from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.domain import BodyRejected, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.native.mapping import parse_native
from shared.events import Event
from tests.support.events import native_usage_json

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits(max_events=10, max_event_bytes=1024, max_future=timedelta(minutes=5))


def _event(**fields: Any) -> dict[str, Any]:
    return native_usage_json(**{"occurred_at": NOW.isoformat(), **fields})


def _parse(document: object, limits: Limits = LIMITS) -> list[Item]:
    return parse_native(orjson.dumps(document), NOW, limits).items


def _body_reason(body: bytes, limits: Limits = LIMITS) -> Reason:
    with pytest.raises(BodyRejected) as caught:
        parse_native(body, NOW, limits)
    assert caught.value.rejection.original == body
    return caught.value.rejection.reason


def test_one_event_and_a_batch_are_both_read() -> None:
    single = parse_native(orjson.dumps(_event()), NOW, LIMITS)
    batch = parse_native(orjson.dumps({"events": [_event(), _event(account_id="b")]}), NOW, LIMITS)

    assert not single.batch and len(single.items) == 1
    assert batch.batch
    assert [e.account_id for e in batch.items if isinstance(e, Event)] == ["acme", "b"]


def test_a_batch_keeps_valid_items_and_rejects_invalid_ones_by_position() -> None:
    missing = _event()
    del missing["account_id"]

    items = _parse({"events": [_event(), missing, _event(quantity="lots"), 7]})

    assert isinstance(items[0], Event)
    rejections = items[1:]
    assert all(isinstance(r, Rejection) for r in rejections)
    assert [r.reason for r in rejections if isinstance(r, Rejection)] == [Reason.invalid_event] * 3
    first = rejections[0]
    assert isinstance(first, Rejection)
    assert first.details == ({"field": "account_id", "reason": "Field required"},)
    assert orjson.loads(first.original) == missing


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"occurred_at": "2026-11-22T10:00:00"}, "occurred_at"),
        ({"kind": "telemetry"}, "kind"),
        ({"unexpected": 1}, "unexpected"),
        ({"kind": "billing"}, "(event)"),
    ],
)
def test_wrong_values_name_the_field(fields: dict[str, Any], field: str) -> None:
    (rejection,) = _parse(_event(**fields))
    assert isinstance(rejection, Rejection)
    assert rejection.reason is Reason.invalid_event
    assert rejection.details[0]["field"] == field


def test_an_invalid_item_keeps_its_account_and_event_id_for_the_dead_letter() -> None:
    (rejection,) = _parse(_event(event_id="e-9", quantity=-1))
    assert isinstance(rejection, Rejection)
    assert (rejection.account_id, rejection.event_id) == ("acme", "e-9")


def test_an_event_over_the_size_limit_is_rejected_alone() -> None:
    big = _event(properties={"blob": "x" * 2000})

    single = _parse(big)
    batch = _parse({"events": [_event(), big]})

    for rejection in (single[0], batch[1]):
        assert isinstance(rejection, Rejection)
        assert rejection.reason is Reason.event_too_large
        assert "limit is 1024" in rejection.message
    assert isinstance(batch[0], Event)


def test_events_from_the_future_are_rejected_and_late_ones_pass() -> None:
    ahead = _event(occurred_at=(NOW + timedelta(minutes=6)).isoformat(), event_id="f")
    slightly_ahead = _event(occurred_at=(NOW + timedelta(minutes=4)).isoformat())
    late = _event(occurred_at=(NOW - timedelta(days=400)).isoformat())

    future, fine, old = _parse({"events": [ahead, slightly_ahead, late]})

    assert isinstance(future, Rejection)
    assert future.reason is Reason.event_in_future
    assert future.event_id == "f"
    assert isinstance(fine, Event) and isinstance(old, Event)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"account_id": ', Reason.malformed_json),
        (b"[]", Reason.invalid_body),
        (b'{"events": []}', Reason.invalid_body),
        (b'{"events": {}}', Reason.invalid_body),
        (b'{"events": [], "extra": 1}', Reason.invalid_body),
    ],
    ids=["malformed", "list", "empty-batch", "batch-not-a-list", "batch-with-extra-keys"],
)
def test_unreadable_bodies_are_rejected_whole(body: bytes, reason: Reason) -> None:
    assert _body_reason(body) is reason


def test_too_many_events_rejects_the_whole_body() -> None:
    body = orjson.dumps({"events": [_event()] * 3})
    assert _body_reason(body, Limits(max_events=2)) is Reason.too_many_events


def test_ids_are_kept_when_given_and_made_otherwise() -> None:
    given, missing = _parse({"events": [_event(event_id="e-1"), _event()]})

    assert isinstance(given, Event) and given.event_id == "e-1"
    assert isinstance(missing, Event) and len(missing.event_id) == 36
    assert missing.received_at == NOW


def test_times_are_normalised_to_utc() -> None:
    (event,) = _parse(_event(occurred_at="2026-11-22T12:00:00+02:00"))
    assert isinstance(event, Event)
    assert event.occurred_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
