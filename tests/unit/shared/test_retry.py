import random

from shared.retry import Backoff


def test_delays_grow_then_stay_under_the_cap() -> None:
    backoff = Backoff(initial_delay_s=1, max_delay_s=8, _random=random.Random(7))

    delays = [backoff.next_delay() for _ in range(8)]

    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_reset_starts_over() -> None:
    backoff = Backoff(initial_delay_s=1, max_delay_s=8)
    for _ in range(5):
        backoff.next_delay()

    backoff.reset()

    assert backoff.next_delay() <= 1
