import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from shared.events import AccountTraits, Billing, Event, event_json_schema
from tests.support.events import billing_event, usage_event

SCHEMA_FILE = Path(__file__).parents[3] / "docs" / "event-schema.json"


def test_published_schema_matches_the_model() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == event_json_schema(), "run `make schema` to refresh docs/event-schema.json"


@pytest.mark.parametrize("event", [usage_event(), billing_event()])
def test_bytes_round_trip(event: Event) -> None:
    assert Event.from_bytes(event.to_bytes()) == event


def test_amounts_need_a_currency() -> None:
    with pytest.raises(ValidationError, match="currency is required"):
        Billing(mrr_minor=100)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        usage_event(occurred_at=datetime(2026, 1, 1))


def test_times_become_utc() -> None:
    event = usage_event(occurred_at=datetime.fromisoformat("2026-01-01T05:00:00-05:00"))
    assert event.occurred_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


TOO_LONG = "Value should have at most 200 items after validation, not 201"


@pytest.mark.parametrize(
    ("given", "kind", "message"),
    [
        (" \t", "too_short", "Value should have at least 1 item after validation, not 0"),
        ("a" * 201, "too_long", TOO_LONG),
        ("e\u0301" * 201, "too_long", TOO_LONG),  # 201 characters once in NFC
        ("ac\x00me", "value_error", "Value error, must not contain control characters"),
        ("ac\x85me", "value_error", "Value error, must not contain control characters"),
    ],
)
def test_ids_are_refused_with_pydantics_own_errors(given: str, kind: str, message: str) -> None:
    """An id's length is checked by its normaliser, with the errors pydantic's length
    constraints gave when they checked it after the normaliser."""
    with pytest.raises(ValidationError) as refused:
        Event.model_validate({**_fields(), "account_id": given})
    [error] = refused.value.errors()
    assert (error["type"], error["loc"], error["msg"], error["input"]) == (
        kind,
        ("account_id",),
        message,
        given,
    )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("  acme  ", "acme"),
        (" " + "a" * 200 + " ", "a" * 200),
        ("e\u0301" * 100, "\u00e9" * 100),  # NFC: 100 characters, not 200
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_ids_are_trimmed_and_normalised_before_their_length_is_checked(
    given: str, kept: str
) -> None:
    assert Event.model_validate({**_fields(), "account_id": given}).account_id == kept


def test_printable_text_is_checked_for_every_control_character() -> None:
    """Printable ASCII skips the pattern search; every other text is searched."""
    for code in range(0x2000):
        text = f"a{chr(code)}b"
        control = code < 0x20 or 0x7F <= code <= 0x9F
        try:
            Event.model_validate({**_fields(), "name": text})
        except ValidationError:
            assert control, hex(code)
        else:
            assert not control, hex(code)


@pytest.mark.parametrize(
    ("model", "given"),
    [
        (Event, {"name": "a\x00b"}),
        (Event, {"feature": "a\x85b"}),
        (Billing, {"plan": "\x7f"}),
        (AccountTraits, {"owner_csm_slack": "@csm\n"}),
    ],
)
def test_texts_with_control_characters_are_refused_with_a_value_error(
    model: type[BaseModel], given: dict[str, object]
) -> None:
    """Checked by pydantic-core itself, in the words of the Python validator it replaced."""
    document = {**_fields(), **given} if model is Event else given
    with pytest.raises(ValidationError) as refused:
        model.model_validate(document)
    [(field, text)] = given.items()
    [error] = refused.value.errors()
    assert (error["type"], error["loc"], error["msg"], error["input"]) == (
        "value_error",
        (field,),
        "Value error, must not contain control characters",
        text,
    )


def _fields() -> dict[str, object]:
    return usage_event().model_dump(exclude_none=True)
