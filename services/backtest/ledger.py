"""What a replay remembers of each model's scores: two bytes per account and day.

The report needs each account's health and risk on every day (lead times, the
health a month before cancelling, false alarms), so they are kept compactly; the
rest of each day's assessment goes to the daily file as it is made.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import date
from typing import IO

import orjson

from services.scoring.domain import AccountState, Assessment
from shared.scores import Risk, Tier

NONE = -1
RISK_CODES = {Risk.low: 0, Risk.medium: 1, Risk.high: 2}
NO_RISK = 255


@dataclass
class Trace:
    """One account's days under one model, from ``first`` (a day index) on."""

    first: int
    health: array[int] = field(default_factory=lambda: array("b"))
    risk: bytearray = field(default_factory=bytearray)
    tier: Tier | None = None
    mrr_minor: int | None = None
    owner: str | None = None

    def at(self, index: int) -> tuple[int, int]:
        """(health, risk code) on day ``index``, or (NONE, NO_RISK) without a score."""
        offset = index - self.first
        if 0 <= offset < len(self.health):
            return self.health[offset], self.risk[offset]
        return NONE, NO_RISK


@dataclass
class Ledger:
    """Every account's trace under one model."""

    name: str
    start: date | None = None
    last: date | None = None
    traces: dict[str, Trace] = field(default_factory=dict)
    daily: IO[bytes] | None = None

    def record(
        self, account_id: str, day: date, assessment: Assessment | None, state: AccountState
    ) -> None:
        if self.start is None:
            self.start = day
        self.last = day
        index = (day - self.start).days
        trace = self.traces.get(account_id)
        if trace is None:
            if assessment is None:
                return  # not judged yet: nothing to keep until a first score
            trace = self.traces[account_id] = Trace(first=index)
        health = assessment.health_score if assessment else NONE
        risk = RISK_CODES[assessment.risk] if assessment else NO_RISK
        trace.health.append(health)
        trace.risk.append(risk)
        trace.tier = assessment.effective_tier if assessment else None
        trace.mrr_minor = state.mrr_minor
        trace.owner = state.trait("owner_csm_email") or state.trait("owner_csm_slack")
        if self.daily is not None and assessment is not None:
            self.daily.write(daily_line(account_id, day, assessment))

    def day_index(self, day: date) -> int:
        assert self.start is not None
        return (day - self.start).days


def daily_line(account_id: str, day: date, assessment: Assessment) -> bytes:
    """One line of the daily file; other tools read this exact shape. Band and tier are
    the effective ones (a CSM's override in force, else computed), as the API shows."""
    row = {  # orjson writes an enum as its value
        "account_id": account_id,
        "day": day.isoformat(),
        "health_score": assessment.health_score,
        "band": assessment.effective_band,
        "risk": assessment.risk,
        "risk_reasons": assessment.risk_reasons,
        "value_score": assessment.value_score,
        "tier": assessment.effective_tier,
        "stage": assessment.stage,
        "stale": assessment.stale,
    }
    return orjson.dumps(row) + b"\n"
