import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.ingest.domain import BodyRejected, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.cloudevents.mapping import (
    cloud_event_id,
    cloud_event_item,
    parse_cloudevents,
)
from shared.events import Event, EventKind

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits(max_events=3, max_event_bytes=1024)


def _envelope(**fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "42",
        "source": "//billing/app",
        "type": "report.exported",
        "time": "2026-11-22T11:00:00Z",
        "datacontenttype": "application/json",
        "data": {"account_id": "acme", "user_id": "u1"},
        **fields,
    }


def _item(envelope: Any) -> Item:
    return cloud_event_item(envelope, NOW, LIMITS)


def test_the_envelope_fills_what_data_leaves_out() -> None:
    event = _item(_envelope())

    assert isinstance(event, Event)
    assert (event.event_id, event.name, event.kind) == (
        "//billing/app#42",
        "report.exported",
        EventKind.usage,
    )
    assert (event.account_id, event.user_id) == ("acme", "u1")
    assert event.occurred_at == datetime(2026, 11, 22, 11, tzinfo=UTC)


def test_data_wins_over_the_envelope_and_the_account_extension_is_read() -> None:
    data = {"event_id": "e1", "name": "seats.changed", "kind": "account", "traits": {}}
    event = _item(_envelope(data=data, accountid="globex"))

    assert isinstance(event, Event)
    assert (event.event_id, event.name, event.kind, event.account_id) == (
        "e1",
        "seats.changed",
        EventKind.account,
        "globex",
    )


def test_data_base64_holding_json_is_read() -> None:
    encoded = base64.b64encode(orjson.dumps({"account_id": "acme"})).decode()
    envelope = _envelope(data_base64=encoded)
    del envelope["data"]

    event = _item(envelope)

    assert isinstance(event, Event) and event.account_id == "acme"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": None}, "id"),
        ({"source": ""}, "source"),
        ({"type": 7}, "type"),
        ({"time": "yesterday"}, "time"),
        ({"datacontenttype": "application/xml"}, "datacontenttype"),
        ({"Bad-Ext": "x"}, "Bad-Ext"),
    ],
)
def test_an_invalid_envelope_names_the_attribute(changes: dict[str, Any], field: str) -> None:
    envelope = {k: v for k, v in _envelope(**changes).items() if v is not None}

    rejection = _item(envelope)

    assert isinstance(rejection, Rejection) and rejection.reason is Reason.invalid_event
    assert field in [d["field"] for d in rejection.details]


def test_data_that_is_not_a_valid_event_is_rejected_with_its_fields() -> None:
    no_data = _item({k: v for k, v in _envelope().items() if k != "data"})
    bad_data = _item(_envelope(data={"account_id": "acme", "quantity": -1}))

    assert isinstance(no_data, Rejection) and no_data.event_id == "//billing/app#42"
    assert isinstance(bad_data, Rejection) and bad_data.reason is Reason.invalid_event
    assert [d["field"] for d in bad_data.details] == ["quantity"]


def test_a_batch_is_read_item_by_item() -> None:
    body = orjson.dumps([_envelope(), "nope", _envelope(id="43", data={})])

    parsed = parse_cloudevents(body, NOW, LIMITS, batch=True)

    assert parsed.batch
    assert [type(i).__name__ for i in parsed.items] == ["Event", "Rejection", "Rejection"]


@pytest.mark.parametrize(
    ("body", "batch", "reason"),
    [
        (b"{", False, Reason.malformed_json),
        (b"[]", False, Reason.invalid_body),
        (b"{}", True, Reason.invalid_body),
        (b"[]", True, Reason.invalid_body),
        (orjson.dumps([_envelope()] * 4), True, Reason.too_many_events),
    ],
)
def test_unreadable_bodies_are_rejected_whole(body: bytes, batch: bool, reason: Reason) -> None:
    with pytest.raises(BodyRejected) as caught:
        parse_cloudevents(body, NOW, LIMITS, batch=batch)

    assert caught.value.rejection.reason is reason


def test_an_oversized_event_is_rejected_alone() -> None:
    big = _envelope(data={"account_id": "acme", "properties": {"x": "y" * 2000}})

    parsed = parse_cloudevents(orjson.dumps([big, _envelope()]), NOW, LIMITS, batch=True)

    first = parsed.items[0]
    assert isinstance(first, Rejection) and first.reason is Reason.event_too_large
    assert isinstance(parsed.items[1], Event)


def test_ids_too_long_together_are_hashed_to_a_stable_id() -> None:
    long_id = cloud_event_id("s" * 150, "i" * 100)

    assert long_id == cloud_event_id("s" * 150, "i" * 100)
    assert long_id.startswith("ce:") and len(long_id) == 67
