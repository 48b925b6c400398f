from datetime import timedelta

import pytest

from services.alerts.domain import (
    HEALTH_BELOW_THRESHOLD,
    RETRY_SCHEDULE,
    Transition,
    alert_id,
    evaluate_health,
    retry_delay,
    webhook_payload,
)
from tests.support.events import score_change


@pytest.mark.parametrize(
    ("health", "is_open", "expected"),
    [
        (39, False, Transition.opened),
        (39, True, None),
        (40, True, Transition.resolved),
        (40, False, None),
        (0, False, Transition.opened),
    ],
)
def test_health_rule(health: int, is_open: bool, expected: Transition | None) -> None:
    assert evaluate_health(score_change(health_score=health), is_open, 40) is expected


def test_alert_ids_are_deterministic_and_distinct() -> None:
    first = alert_id("acme", HEALTH_BELOW_THRESHOLD, 1)

    assert first == alert_id("acme", HEALTH_BELOW_THRESHOLD, 1)
    assert first != alert_id("acme", HEALTH_BELOW_THRESHOLD, 2)
    assert first != alert_id("acme2", HEALTH_BELOW_THRESHOLD, 1)


def test_retry_follows_the_schedule_then_gives_up() -> None:
    assert retry_delay(1, 10, None) == RETRY_SCHEDULE[0]
    assert retry_delay(2, 10, None) == RETRY_SCHEDULE[1]
    assert retry_delay(9, 10, None) == RETRY_SCHEDULE[-1]
    assert retry_delay(10, 10, None) is None


def test_retry_after_is_honoured_but_capped() -> None:
    assert retry_delay(1, 10, 120) == timedelta(seconds=120)
    assert retry_delay(1, 10, 1) == RETRY_SCHEDULE[0]
    assert retry_delay(1, 10, 10**9) == timedelta(hours=24)


def test_payload_explains_the_change() -> None:
    change = score_change(health_score=20, previous_score=75)

    payload = webhook_payload("id-1", HEALTH_BELOW_THRESHOLD, Transition.opened, change, 40)

    assert payload["type"] == "alert.opened"
    assert payload["summary"] == "Health of acme fell below 40: 75 -> 20 (red)"
    assert payload["components"] == {"recency": 20}
