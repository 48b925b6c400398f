"""Durations written the way people write them in YAML: ``30s``, ``5m``, ``24h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(value: object) -> object:
    """``"24h"`` -> ``timedelta(hours=24)``; anything else is left to pydantic."""
    if isinstance(value, str) and (match := PATTERN.match(value)):
        amount, unit = match.groups()
        try:
            return timedelta(**{UNITS[unit]: int(amount)})
        except OverflowError:
            raise ValueError(f"{value!r} is longer than a duration can be") from None
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        raise ValueError(f"{value!r} is not a duration like 30s, 5m, 24h, 7d or 2w")
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for suffix, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
