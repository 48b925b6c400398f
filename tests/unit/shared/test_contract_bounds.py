"""Every message that crosses a topic is bounded, field by field, when it is built: a
score change, an alert event and a dead letter always fit a Kafka record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from services.alerts.delivery.payloads import MAX_DETAILS_BYTES, MAX_SUMMARY_CHARS, alert_event
from shared.dlq import MAX_MESSAGE_CHARS, MAX_ORIGINAL_BYTES, DeadLetter
from shared.scores import MAX_DRIVERS, MAX_LIST_ITEMS, ScoreChange
from tests.support.alerts_messages import driver, enriched_change, opened
from tests.support.events import T0, score_change

ONE_MB = 1024 * 1024


def _change_with(**fields: Any) -> bytes:
    document = orjson.loads(score_change().to_bytes())
    document.update(fields)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"risk_reasons": ["x" * 600_000]}, "risk_reasons.0"),
        ({"risk_reasons": ["r"] * (MAX_LIST_ITEMS + 1)}, "risk_reasons"),
        ({"scorecard": "s" * 201}, "scorecard"),
        ({"components": {f"c{i}": 1 for i in range(MAX_LIST_ITEMS + 1)}}, "components"),
        ({"components": {"c" * 101: 1}}, "components"),
        (
            {"drivers": [{"component": "e", "points": 1, "text": "t" * 501}]},
            "drivers.0.text",
        ),
        (
            {"drivers": [{"component": "e", "points": 1, "text": "t"}] * (MAX_DRIVERS + 1)},
            "drivers",
        ),
        ({"account": {"currency": "EURO"}}, "account.currency"),
    ],
)
def test_a_score_change_beyond_its_bounds_is_refused(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ScoreChange.from_bytes(_change_with(**fields))

    assert where in {
        ".".join(str(p) for p in e["loc"][: where.count(".") + 1]) for e in refused.value.errors()
    }


def test_the_largest_score_change_within_bounds_fits_a_kafka_record() -> None:
    largest = _change_with(
        risk_reasons=["\u4e00" * 500] * MAX_LIST_ITEMS,
        drivers=[{"component": "c" * 100, "points": 1, "text": "\u4e00" * 500}] * MAX_DRIVERS,
        components={f"{i:0100d}": 1 for i in range(MAX_LIST_ITEMS)},
        scorecard="s" * 200,
    )

    assert len(ScoreChange.from_bytes(largest).to_bytes()) < ONE_MB


def test_an_alert_event_beyond_its_bounds_is_refused_when_built() -> None:
    change = enriched_change(drivers=[driver("engagement", -3, "active users down")])
    later = T0 + timedelta(minutes=1)

    with pytest.raises(ValidationError, match="summary"):
        alert_event(opened("s" * (MAX_SUMMARY_CHARS + 1), {}), change, later, None)
    with pytest.raises(ValidationError, match="over 262144"):
        alert_event(opened("s", {"blob": "b" * MAX_DETAILS_BYTES}), change, later, None)


def test_a_churn_alert_quoting_every_reason_a_change_may_hold_is_built() -> None:
    reasons = ["\u4e00" * 500] * MAX_LIST_ITEMS  # the widest: three bytes a character
    change = enriched_change(risk_reasons=reasons)
    summary = "Churn risk low -> high: " + "; ".join(reasons)

    event = alert_event(opened(summary, {"risk_reasons": list(reasons)}), change, T0, None)

    assert len(event.model_dump_json()) < ONE_MB


def test_a_dead_letter_is_always_built_its_long_texts_cut_with_an_ellipsis() -> None:
    letter = DeadLetter.of(
        b"o" * (MAX_ORIGINAL_BYTES + 1),
        reason="processing_failed",
        message="m" * 10_000,
        source="kafka:" + "t" * 1000,
        rejected_at=datetime(2026, 12, 7, tzinfo=UTC),
        processor="scoring@1",
    )

    assert len(letter.message) == MAX_MESSAGE_CHARS and letter.message.endswith("\u2026")
    assert len(letter.source) == 300
    assert letter.truncated and letter.original_size == MAX_ORIGINAL_BYTES + 1
    assert len(letter.to_bytes()) < ONE_MB
