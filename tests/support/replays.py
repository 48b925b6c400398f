"""Day-by-day replays for model tests: the backtest's replay, one account at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from services.alerts.rules.ruleset import DEFAULT_RULES_FILE, load_rules
from services.backtest.replay import Model, Replay
from services.backtest.run import production_judge
from services.scoring.domain import AccountState, Assessment, Limits
from services.scoring.scorecard import load_scorecards
from services.scoring.settings import SHIPPED_SCORECARDS
from shared.events import Event
from tests.support.scoring_builders import usage

START = date(2026, 1, 5)  # a Monday


@dataclass
class Days:
    """Each day's close of one account, and the alert notices the rules sent."""

    scores: dict[date, Assessment | None] = field(default_factory=dict)
    notices: list[tuple[date, str, str]] = field(default_factory=list)

    def on(self, day: date) -> Assessment:
        found = self.scores[day]
        assert found is not None, f"no score on {day}"
        return found

    def high_days(self, after: date | None = None) -> list[date]:
        return [
            d
            for d, a in self.scores.items()
            if a is not None and a.risk.value == "high" and (after is None or d > after)
        ]


def replay(
    events: list[Event],
    until: date,
    *,
    scorecards: Path = SHIPPED_SCORECARDS,
    rules: Path = DEFAULT_RULES_FILE,
    account_id: str = "acme",
) -> Days:
    """Replay ``events`` (any order) and close every day up to ``until``."""
    days = Days()
    cards = load_scorecards(scorecards)

    def on_score(
        _: int, account: str, day: date, assessment: Assessment | None, __: AccountState
    ) -> None:
        if account == account_id:
            days.scores[day] = assessment

    judge = production_judge(load_rules(rules).enabled)
    run = Replay([Model(cards.default.ref, cards)], Limits(), judge, on_score)
    for event in sorted(events, key=lambda e: e.occurred_at):
        run.add(event)
    run.finish(until)
    days.notices = [n for n in run.alerts[0].notices]
    return days


def steady_usage(
    start: date,
    days: int,
    *,
    account_id: str = "acme",
    users: int = 6,
    per_user: int = 3,
    level: Callable[[int], float] = lambda _: 1.0,
    active: Callable[[int], int] | None = None,
    feature: str = "Report Exported",
) -> list[Event]:
    """Usage on a weekly rhythm (weekends quiet) by the first ``active(offset)`` of the
    users (all by default), scaled each day by ``level(offset)``."""
    events = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        weekday = 1.0 if day.weekday() < 5 else 0.2
        present = users if active is None else active(offset)
        count = round(present * per_user * weekday * level(offset))
        for n in range(count):
            at = datetime.combine(day, time(9), UTC) + timedelta(minutes=n)
            user = f"u{n % present}"
            events.append(
                usage(
                    account_id=account_id,
                    at=at,
                    user_id=user,
                    name=feature if n % 4 == 0 else "x",
                    event_id=f"{account_id}-{at.isoformat()}-{user}",
                )
            )
    return events
