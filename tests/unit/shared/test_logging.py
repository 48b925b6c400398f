"""A library that logs every retry is held to one line per message a minute."""

import logging

from shared.logging import RepeatFilter


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_of_a_quieted_library_pass_once_per_window_and_say_how_many_were_held() -> None:
    quiet = RepeatFilter(window_s=60)
    retries = [_record("aiokafka.conn", "Unable connect to %s", f"node-{i}") for i in range(50)]

    passed = [r for r in retries if quiet.filter(r)]
    other = quiet.filter(_record("aiokafka.cluster", "Topic %s not found", "t"))
    ours = [quiet.filter(_record("shared.consumer", "failed")) for _ in range(3)]

    assert passed == retries[:1]
    assert other is True
    assert ours == [True, True, True]


def test_after_the_window_the_next_line_passes_with_the_count_held_back() -> None:
    now = [0.0]
    quiet = RepeatFilter(window_s=60, clock=lambda: now[0])
    lines = [_record("aiokafka", "down") for _ in range(7)]

    first = quiet.filter(lines[0])
    now[0] = 30.0
    held = [quiet.filter(line) for line in lines[1:6]]
    now[0] = 61.0
    after = quiet.filter(lines[6])

    assert (first, held, after) == (True, [False] * 5, True)
    assert not hasattr(lines[0], "repeats_suppressed")
    assert getattr(lines[6], "repeats_suppressed", None) == 5
