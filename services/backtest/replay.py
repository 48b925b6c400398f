"""The replay: events folded into account states day by day, and every account
re-scored at the end of each day as the sweep does, under each model side by side.

The fold (``apply_events``), the scoring (``rescore``) and the alert rules
(``evaluate``) are the services' own pure cores; only time comes from the events.
What ``rescore`` keeps in a state (the last assessment, the day closes, the trends)
depends on the scorecard, so with several models each keeps its own copy and swaps
it in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.alerts.engine import Alert, HealthHistory, evaluate
from services.alerts.ruleset import Rule
from services.scoring.domain import (
    AccountState,
    Assessment,
    Limits,
    Portfolio,
    apply_events,
    rescore,
    scorecard_for,
)
from services.scoring.scorecard import ScorecardSet
from shared.events import Event, SubscriptionStatus
from shared.scores import ScoreChange, Trigger

# What rescore keeps in a state; each model has its own.
SCORED = (
    "last",
    "current",
    "daily_scores",
    "daily_tiers",
    "drivers",
    "trend_7d",
    "trend_30d",
    "sequence",
)


def _fresh() -> dict[str, Any]:
    state = AccountState(account_id="-")
    return {name: getattr(state, name) for name in SCORED}


@dataclass
class Model:
    """One scorecard set under test, named by its default scorecard."""

    name: str
    scorecards: ScorecardSet


@dataclass
class AlertsReplay:
    """The alert rules run on one model's score changes, as the alerts service would."""

    rules: list[Rule]
    history: dict[str, HealthHistory] = field(default_factory=dict)
    alerts: dict[str, dict[str, Alert]] = field(default_factory=lambda: defaultdict(dict))
    notices: list[tuple[date, str, str]] = field(default_factory=list)  # (day, owner, rule)

    def judge(self, change: ScoreChange) -> None:
        account = change.account_id
        result = evaluate(
            self.rules,
            change,
            self.history.get(account, []),
            self.alerts[account],
            [],
            change.computed_at,
        )
        self.history[account] = result.history
        owner = change.account.owner_csm_email or change.account.owner_csm_slack or "unassigned"
        for decision in result.decisions:
            self.alerts[account][decision.alert.rule] = decision.alert
            if decision.notify:
                self.notices.append((change.computed_at.date(), owner, decision.alert.rule))


OnScore = Callable[[int, str, date, Assessment | None, AccountState], None]
OnChange = Callable[[int, ScoreChange], None]


class Replay:
    """Feed events in event-time order with :meth:`add`; :meth:`finish` closes the last day."""

    def __init__(
        self,
        models: list[Model],
        limits: Limits,
        rules: list[Rule],
        on_score: OnScore,
        on_change: OnChange | None = None,
    ) -> None:
        self.models = models
        self.limits = limits
        self.alerts = [AlertsReplay(rules) for _ in models]
        self.states: dict[str, AccountState] = {}
        self.cancelled_on: dict[str, date] = {}
        self.day: date | None = None
        self._scored: dict[str, list[dict[str, Any]]] = {}
        self._pending: dict[str, list[Event]] = defaultdict(list)
        self._on_score = on_score
        self._on_change = on_change

    def add(self, event: Event) -> None:
        day = event.occurred_at.date()
        if self.day is None:
            self.day = day
        while day > self.day:
            self._close(self.day)
            self.day += timedelta(days=1)
        self._pending[event.account_id].append(event)

    def finish(self, last_day: date | None = None) -> None:
        """Close the current day, and every day after it up to ``last_day``."""
        if self.day is None:
            return
        self._close(self.day)
        while last_day is not None and self.day < last_day:
            self.day += timedelta(days=1)
            self._close(self.day)

    def _close(self, day: date) -> None:
        self._fold(day)
        as_of = datetime.combine(day, time.max, UTC)
        portfolio = Portfolio.of(
            mrr for s in self.states.values() if (mrr := s.fact("mrr_minor")) is not None
        )
        swapping = len(self.models) > 1  # a single model's scores stay in the states
        for account_id in sorted(self.states):
            state = self.states[account_id]
            kept = self._kept(account_id) if swapping else None
            for index, model in enumerate(self.models):
                if kept is not None:
                    _swap_in(state, kept[index])
                card = scorecard_for(state, model.scorecards)
                result = rescore(state, as_of, card, portfolio=portfolio, trigger=Trigger.sweep)
                if kept is not None:
                    _swap_out(state, kept[index])
                self._on_score(index, account_id, day, result.assessment, state)
                if result.change is not None:
                    self.alerts[index].judge(result.change)
                    if self._on_change is not None:
                        self._on_change(index, result.change)

    def _kept(self, account_id: str) -> list[dict[str, Any]]:
        """What each model's ``rescore`` keeps in the account's state."""
        kept = self._scored.get(account_id)
        if kept is None:
            kept = self._scored[account_id] = [_fresh() for _ in self.models]
        return kept

    def _fold(self, day: date) -> None:
        for account_id, events in self._pending.items():
            state = self.states.get(account_id)
            if state is None:
                state = self.states[account_id] = AccountState(account_id=account_id)
            apply_events(state, events, self.limits)
            if account_id not in self.cancelled_on and _cancelled(state):
                self.cancelled_on[account_id] = day
        self._pending.clear()


def _cancelled(state: AccountState) -> bool:
    return state.fact("status") is SubscriptionStatus.canceled


def _swap_in(state: AccountState, kept: dict[str, Any]) -> None:
    vars(state).update(kept)  # plain attributes: no validation on the hot path


def _swap_out(state: AccountState, kept: dict[str, Any]) -> None:
    values = vars(state)
    for name in SCORED:
        kept[name] = values[name]
