from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.ingest.normalise import InvalidPayload, normalise, parse_payload
from tests.support.events import native_usage_json

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _body(document: object) -> bytes:
    return orjson.dumps(document)


def test_one_event_and_a_batch_are_both_accepted() -> None:
    assert len(parse_payload(_body(native_usage_json()), 10)) == 1
    batch = {"events": [native_usage_json(), native_usage_json(account_id="b")]}
    assert [e.account_id for e in parse_payload(_body(batch), 10)] == ["acme", "b"]


def test_malformed_json_says_so() -> None:
    with pytest.raises(InvalidPayload, match="not valid JSON") as caught:
        parse_payload(b'{"account_id": ', 10)
    assert caught.value.errors == []


def test_missing_account_id_names_the_field() -> None:
    event = native_usage_json()
    del event["account_id"]

    with pytest.raises(InvalidPayload) as caught:
        parse_payload(_body(event), 10)

    assert caught.value.errors == [{"field": "account_id", "reason": "Field required"}]


def test_errors_in_a_batch_name_the_item() -> None:
    batch = {"events": [native_usage_json(), native_usage_json(quantity="lots")]}

    with pytest.raises(InvalidPayload) as caught:
        parse_payload(_body(batch), 10)

    assert [e["field"] for e in caught.value.errors] == ["events[1].quantity"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"occurred_at": "2026-11-22T10:00:00"}, "occurred_at"),
        ({"kind": "telemetry"}, "kind"),
        ({"unexpected": 1}, "unexpected"),
        ({"kind": "billing"}, "(body)"),
    ],
)
def test_wrong_values_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_payload(_body(native_usage_json(**fields)), 10)
    assert caught.value.errors[0]["field"] == field


def test_too_many_events() -> None:
    batch = {"events": [native_usage_json()] * 3}
    with pytest.raises(InvalidPayload, match="limit is 2"):
        parse_payload(_body(batch), 2)


def test_a_list_body_is_refused() -> None:
    with pytest.raises(InvalidPayload, match="JSON object"):
        parse_payload(b"[]", 10)


def test_normalise_keeps_a_given_id_and_makes_one_otherwise() -> None:
    given, missing = parse_payload(
        _body({"events": [native_usage_json(event_id="e-1"), native_usage_json()]}), 10
    )

    assert normalise(given, NOW).event_id == "e-1"
    generated = normalise(missing, NOW)
    assert len(generated.event_id) == 36
    assert generated.received_at == NOW


def test_times_are_normalised_to_utc() -> None:
    (event,) = parse_payload(_body(native_usage_json(occurred_at="2026-11-22T12:00:00+02:00")), 1)
    assert normalise(event, NOW).occurred_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
