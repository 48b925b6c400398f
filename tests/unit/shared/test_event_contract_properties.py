"""Generated bad input: the event contract answers every record with an event that
travels and folds, or with a ValidationError; never with any other exception."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.domain import BodyRejected, Limits
from services.ingest.sources.native.mapping import parse_native
from services.scoring.domain import AccountState, apply_events
from services.scoring.settings import ScoringSettings
from shared.events import Event
from tests.support.event_strategies import encoded, events

RECEIVED = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = ScoringSettings().limits()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_a_record_is_an_event_that_travels_and_folds_or_a_validation_error(
    document: dict[str, Any],
) -> None:
    raw = encoded(document)
    if raw is None:
        return
    try:
        event = Event.from_bytes(raw)
    except ValidationError:
        return
    assert Event.from_bytes(event.to_bytes()) == event
    state = AccountState(account_id=event.account_id)
    apply_events(state, [event], LIMITS)
    AccountState.model_validate_json(state.model_dump_json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=4))
def test_ingest_answers_any_body_with_items_or_a_whole_body_rejection(
    documents: list[dict[str, Any]],
) -> None:
    raw = encoded({"events": documents})
    if raw is None:
        return
    try:
        parsed = parse_native(raw, RECEIVED, Limits(max_future=Limits().max_future))
    except BodyRejected:
        return
    for item in parsed.items:
        if isinstance(item, Event):
            assert Event.from_bytes(item.to_bytes()).event_id == item.event_id
