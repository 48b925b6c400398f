from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.domain import BodyRejected, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.cloudevents.mapping import (
    cloud_event_item,
    is_binary,
    parse_binary,
)
from shared.events import Event

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits(max_events=3, max_event_bytes=1024)
HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "42",
    "ce-source": "//billing/app",
    "ce-type": "report.exported",
    "ce-time": "2026-11-22T11:00:00Z",
    "ce-accountid": "acme",
}
DATA = {"user_id": "u1", "feature": "export"}


def test_a_binary_event_is_the_structured_event_of_its_headers_and_body() -> None:
    parsed = parse_binary(
        {**HEADERS, "content-type": "application/json"}, orjson.dumps(DATA), NOW, LIMITS
    )
    structured = {
        **{k.removeprefix("ce-"): v for k, v in HEADERS.items()},
        "datacontenttype": "application/json",
        "data": DATA,
    }

    assert parsed.batch is False
    assert parsed.items == [cloud_event_item(structured, NOW, LIMITS)]
    event = parsed.items[0]
    assert isinstance(event, Event)
    assert (event.event_id, event.account_id, event.feature) == (
        "//billing/app#42",
        "acme",
        "export",
    )


def test_header_values_are_percent_decoded_and_names_case_insensitive() -> None:
    headers = {"CE-Id": "a%20b", "Ce-Source": "%2F%2Fcrm", "ce-type": "t", "ce-specversion": "1.0"}
    parsed = parse_binary({**headers, "ce-accountid": "acme"}, b"{}", NOW, LIMITS)

    event = parsed.items[0]
    assert isinstance(event, Event)
    assert event.event_id == "//crm#a b"


def test_missing_attributes_are_named_as_the_headers_that_carry_them() -> None:
    headers = {"ce-specversion": "1.0", "ce-accountid": "acme", "content-type": "text/csv"}
    rejection = parse_binary(headers, orjson.dumps(DATA), NOW, LIMITS).items[0]

    assert isinstance(rejection, Rejection)
    assert rejection.reason == Reason.invalid_event
    fields = [d["field"] for d in rejection.details]
    assert {"ce-id", "ce-source", "ce-type", "content-type"} == set(fields)
    assert rejection.message.startswith("not a valid CloudEvent 1.0 in binary mode: ")
    # The dead letter keeps the event as one structured document.
    assert orjson.loads(rejection.original)["accountid"] == "acme"


def test_a_body_that_is_not_json_is_refused_whole() -> None:
    with pytest.raises(BodyRejected) as refused:
        parse_binary(HEADERS, b"{", NOW, LIMITS)

    assert refused.value.rejection.reason == Reason.malformed_json


def test_binary_mode_is_told_by_a_ce_header() -> None:
    assert is_binary({"Content-Type": "application/json", "Ce-Id": "1"})
    assert not is_binary({"content-type": "application/json", "x-api-key": "k"})
