from datetime import UTC, date, datetime, timedelta

from services.alerts.domain import RETRY_SCHEDULE, digest_day, retry_delay


def test_retry_follows_the_schedule_then_gives_up() -> None:
    assert retry_delay(1, 10, None) == timedelta(seconds=5)
    assert retry_delay(2, 10, None) == timedelta(minutes=5)
    assert retry_delay(3, 10, None) == timedelta(minutes=30)
    assert retry_delay(9, 10, None) == RETRY_SCHEDULE[-1] == timedelta(hours=24)
    assert retry_delay(10, 10, None) is None


def test_jitter_only_ever_stretches_the_wait_by_up_to_a_fifth() -> None:
    assert retry_delay(2, 10, None, jitter=0.5) == timedelta(minutes=5.5)
    assert retry_delay(1, 10, None, jitter=0.999) == timedelta(seconds=5 * 1.1998)


def test_retry_after_is_honoured_but_capped() -> None:
    assert retry_delay(1, 10, 120) == timedelta(seconds=120)
    assert retry_delay(1, 10, 1) == RETRY_SCHEDULE[0]
    assert retry_delay(1, 10, 10**9) == timedelta(hours=24)


def test_the_digest_is_due_from_its_hour_on() -> None:
    assert digest_day(datetime(2026, 11, 22, 8, 59, tzinfo=UTC), 9) is None
    assert digest_day(datetime(2026, 11, 22, 9, 0, tzinfo=UTC), 9) == date(2026, 11, 22)
