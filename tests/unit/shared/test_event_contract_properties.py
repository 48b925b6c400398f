"""Generated bad input: the event contract answers every record with an event that
travels and folds, or with a ValidationError; never with any other exception."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.domain import BodyRejected, Limits
from services.ingest.native import parse_native
from services.scoring.domain import AccountState, apply_events
from services.scoring.settings import ScoringSettings
from shared.events import Event

RECEIVED = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = ScoringSettings().limits()

texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["", " ", "a\x00b", "cafe\u0301", "x" * 250, "\u0085", "acme"])
times = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59Z",
        "2026-11-22T11:00:00Z",
        "2026-11-22T11:00:00",
        "not a time",
    ]
)
integers = st.sampled_from([-(2**63) - 1, -1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 10**16])
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False) | texts | times
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=12,
)
FIELDS = [
    "event_id",
    "account_id",
    "kind",
    "name",
    "occurred_at",
    "received_at",
    "user_id",
    "feature",
    "quantity",
    "properties",
    "billing",
    "traits",
]
billing_values = st.fixed_dictionaries(
    {},
    optional={
        "mrr_minor": integers,
        "amount_minor": integers,
        "seats": integers,
        "currency": st.sampled_from(["USD", "usd", "EURO"]),
        "renewal_date": st.sampled_from(["0001-01-01", "9999-12-31", "2027-01-01", "x"]),
        "plan": texts,
    },
)


def _valid() -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "account_id": "acme",
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": "2026-11-22T11:00:00Z",
        "received_at": "2026-11-22T11:00:00Z",
    }


events = st.builds(
    lambda base, changes, billing: {**base, **changes, **({"billing": billing} if billing else {})},
    st.just(_valid()),
    st.dictionaries(st.sampled_from(FIELDS), json_values | times | texts, max_size=4),
    st.none() | billing_values,
)


def _encoded(document: dict[str, Any]) -> bytes | None:
    try:
        return orjson.dumps(document)
    except TypeError:  # an integer past 64 bits: no JSON producer writes it like this
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_a_record_is_an_event_that_travels_and_folds_or_a_validation_error(
    document: dict[str, Any],
) -> None:
    raw = _encoded(document)
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
    raw = _encoded({"events": documents})
    if raw is None:
        return
    try:
        parsed = parse_native(raw, RECEIVED, Limits(max_future=Limits().max_future))
    except BodyRejected:
        return
    for item in parsed.items:
        if isinstance(item, Event):
            assert Event.from_bytes(item.to_bytes()).event_id == item.event_id
