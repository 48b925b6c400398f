from datetime import UTC, date, datetime, timedelta

import pytest

from services.alerts.delivery.schedule import RETRY_SCHEDULE, digest_day, retry_delay
from services.alerts.settings import AlertsSettings


def test_retry_follows_the_schedule_then_gives_up() -> None:
    assert retry_delay(1, 10, None) == timedelta(seconds=5)
    assert retry_delay(2, 10, None) == timedelta(seconds=10)
    assert retry_delay(3, 10, None) == timedelta(seconds=20)
    assert retry_delay(9, 10, None) == RETRY_SCHEDULE[-1] == timedelta(seconds=50)
    assert retry_delay(10, 10, None) is None


def test_jitter_only_ever_stretches_the_wait_by_up_to_a_fifth() -> None:
    assert retry_delay(2, 10, None, jitter=0.5) == timedelta(seconds=11)
    assert retry_delay(1, 10, None, jitter=0.999) == timedelta(seconds=5 * 1.1998)


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_the_default_schedule_never_waits_more_than_a_minute(jitter: float) -> None:
    """A receiver back after an outage gets every pending delivery within a minute."""
    max_attempts = AlertsSettings().alerts_delivery_max_attempts
    waits = [retry_delay(n, max_attempts, None, jitter) for n in range(1, max_attempts)]

    assert all(wait is not None and wait <= timedelta(seconds=60) for wait in waits)
    assert retry_delay(max_attempts, max_attempts, None, jitter) is None


def test_a_shorter_cap_shortens_every_wait_jitter_included() -> None:
    cap = timedelta(seconds=2)
    waits = [retry_delay(n, 20, None, 0.999999, cap) for n in range(1, 20)]

    assert all(wait is not None and wait <= cap for wait in waits)
    assert waits[-1] == pytest.approx(cap, rel=1e-3)


def test_retry_after_is_honoured_but_capped() -> None:
    assert retry_delay(1, 10, 120) == timedelta(seconds=120)
    assert retry_delay(1, 10, 1) == RETRY_SCHEDULE[0]
    assert retry_delay(1, 10, 10**9) == timedelta(hours=24)


def test_the_digest_is_due_from_its_hour_on() -> None:
    assert digest_day(datetime(2026, 11, 22, 8, 59, tzinfo=UTC), 9) is None
    assert digest_day(datetime(2026, 11, 22, 9, 0, tzinfo=UTC), 9) == date(2026, 11, 22)
