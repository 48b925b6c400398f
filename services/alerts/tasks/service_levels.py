"""Service levels and the company's business calendar: when a task is due.

A task of a tier with a service level of N business days is due at the end of the
business day N business days after the day it was made (in the company's time
zone): a task made on a Friday for an S account (1 day) is due Monday at the end of
the day. A task made on a day off counts from the next business day. Business days
are numpy's (``busday_offset`` with a week mask and a holiday list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class BusinessCalendar:
    weekdays: str = "Mon Tue Wed Thu Fri"
    """numpy week mask: the working days by name."""
    holidays: Sequence[date] = ()
    timezone: str = "UTC"
    day_ends_at: time = time(17, 0)
    _calendar: np.busdaycalendar = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        holidays = np.array([d.isoformat() for d in self.holidays], dtype="datetime64[D]")
        calendar = np.busdaycalendar(weekmask=self.weekdays, holidays=holidays)
        object.__setattr__(self, "_calendar", calendar)

    def add_business_days(self, day: date, days: int) -> date:
        """The business day ``days`` business days after ``day`` (a day off counts
        from the next business day)."""
        moved = np.busday_offset(
            np.datetime64(day.isoformat(), "D"), days, roll="forward", busdaycal=self._calendar
        )
        return date.fromisoformat(str(moved))

    def is_business_day(self, day: date) -> bool:
        return bool(np.is_busday(np.datetime64(day.isoformat(), "D"), busdaycal=self._calendar))

    def due(self, made_at: datetime, business_days: int) -> datetime:
        """The end of the business day ``business_days`` after ``made_at``, in UTC."""
        zone = ZoneInfo(self.timezone)
        local_day = made_at.astimezone(zone).date()
        due_day = self.add_business_days(local_day, business_days)
        return datetime.combine(due_day, self.day_ends_at, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class ServiceLevels:
    """Business days to act per tier (None: no due time), and the grace after the due
    time before a task is escalated."""

    business_days: Mapping[str, int | None]
    grace: Mapping[str, timedelta]
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)

    def due(self, tier: str | None, made_at: datetime, override: int | None) -> datetime | None:
        days = override if override is not None else self.business_days.get(tier or "", None)
        return None if days is None else self.calendar.due(made_at, days)

    def escalate_at(self, tier: str | None, due_at: datetime | None) -> datetime | None:
        if due_at is None:
            return None
        return due_at + self.grace.get(tier or "", timedelta(0))
