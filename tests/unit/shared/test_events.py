import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.events import Billing, Event, event_json_schema
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
