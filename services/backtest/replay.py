"""The replay: events folded into account states day by day, and every account
re-scored at the end of each day as the sweep does, under each model side by side.

Folding, scoring (with the CSM overrides in force) and judging score changes go
through the services' own application layers (``services.scoring.service``,
``services.alerts.service``) on stores in memory; only time comes from the events.
CSMs' overrides and silences, when given, are put in those stores as the services
keep them: an override set (or lifted) is pending from the first day close at or
after that time, as the live sweep applies it within a second; a silence is in each
model's alerts store from the start, and the engine mutes only inside its window.
What scoring keeps in a state (``RESCORED_FIELDS``: the last assessment, the day
closes, the trends) depends on the scorecard, so with several models each keeps its
own copy and swaps it in; the events are folded once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from services.alerts.playbooks.model import PlaybookSet
from services.alerts.rules.engine import Silence
from services.alerts.service import Judge, MemoryAlertsStore, start_tasks
from services.alerts.tasks.service import TaskPolicy
from services.scoring.domain import (
    RESCORED_FIELDS,
    AccountState,
    Assessment,
    Limits,
    Override,
)
from services.scoring.scorecard import ScorecardSet
from services.scoring.service import MemoryScoringStore, Scoring, StoredOverride
from shared.events import Event, SubscriptionStatus
from shared.scores import ScoreChange, Trigger


def _fresh() -> dict[str, object]:
    state = AccountState(account_id="-")
    return {name: getattr(state, name) for name in RESCORED_FIELDS}


@dataclass
class Model:
    """One scorecard set under test, named by its default scorecard."""

    name: str
    scorecards: ScorecardSet


@dataclass(frozen=True)
class CsmOverride:
    """An override a CSM set on an account at ``set_at`` (lifted at ``lifted_at``, if)."""

    account_id: str
    override: Override
    set_at: datetime
    lifted_at: datetime | None = None


@dataclass(frozen=True)
class Playbooks:
    """The playbooks a replay runs on its verdicts, and the service levels it uses."""

    playbook_set: PlaybookSet
    policy: TaskPolicy


@dataclass
class AlertsReplay:
    """One model's score changes judged as the alerts service judges them
    (``services.alerts.service.Judge``), with its memory and silences in memory; a
    notice is counted for each decision that notifies. With ``playbooks``, the tasks
    they start (``services.alerts.service.start_tasks``) are counted once per id, as
    the service stores them once per playbook step and trigger episode."""

    judge: Judge
    store: MemoryAlertsStore = field(default_factory=MemoryAlertsStore)
    notices: list[tuple[date, str, str]] = field(default_factory=list)  # (day, owner, rule)
    playbooks: Playbooks | None = None
    tasks: list[tuple[date, str, str, str]] = field(default_factory=list)
    """(day, owner, tier, playbook) of every task made."""
    _task_ids: set[str] = field(default_factory=set)

    def judge_day(self, changes: list[ScoreChange], now: datetime) -> None:
        """Every change of a day's close, in order, at that close."""
        batch = [(change, None) for change in changes]
        judgement = self.judge.judge_loaded(self.store.memory, self.store.active(now), batch, now)
        for verdict in judgement.verdicts:
            facts = verdict.change.account
            owner = facts.owner_csm_email or facts.owner_csm_slack or "unassigned"
            for decision in verdict.decisions:
                if decision.notify:
                    self.notices.append((now.date(), owner, decision.alert.rule))
        if self.playbooks is None:
            return
        for row in start_tasks(
            self.playbooks.playbook_set, judgement.verdicts, now, self.playbooks.policy
        ):
            if row["id"] not in self._task_ids:
                self._task_ids.add(row["id"])
                self.tasks.append(
                    (now.date(), row["owner"], row["tier"] or "none", row["playbook"])
                )


OnScore = Callable[[int, str, date, Assessment | None, AccountState], None]
OnChange = Callable[[int, ScoreChange], None]


class Replay:
    """Feed events in event-time order with :meth:`add`; :meth:`finish` closes the last day."""

    def __init__(
        self,
        models: list[Model],
        limits: Limits,
        judge: Judge,
        on_score: OnScore,
        on_change: OnChange | None = None,
        overrides: Sequence[CsmOverride] = (),
        silences: Sequence[Silence] = (),
        playbooks: Playbooks | None = None,
    ) -> None:
        self.models = models
        self.scorings = [Scoring(model.scorecards, limits) for model in models]
        self.alerts = [
            AlertsReplay(judge, MemoryAlertsStore(silence_list=list(silences)), playbooks=playbooks)
            for _ in models
        ]
        self.store = MemoryScoringStore()
        # Latest first, so that each close pops what is due (ties in the order given).
        self._to_set = sorted(overrides, key=lambda o: o.set_at)[::-1]
        lifts = [(o.lifted_at, o) for o in overrides if o.lifted_at is not None]
        self._to_lift = sorted(lifts, key=lambda lift: lift[0])[::-1]
        self.refused: list[CsmOverride] = []
        """Overrides on an account not seen by their first close (the API answers 404)."""
        self.states = self.store.states_by_id
        self.cancelled_on: dict[str, date] = {}
        self.day: date | None = None
        self._scored: dict[str, list[dict[str, object]]] = {}
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

    def overrides_never_set(self) -> int:
        """Overrides whose time came after the last close."""
        return len(self._to_set)

    def _close(self, day: date) -> None:
        self._fold(day)
        as_of = datetime.combine(day, time.max, UTC)
        if self._to_set or self._to_lift:
            self._take_overrides(as_of)
        portfolio = self.store.portfolio()
        overrides = self.store.unsettled(self.states)
        swapping = len(self.models) > 1  # a single model's scores stay in the states
        changes: list[list[ScoreChange]] = [[] for _ in self.models]
        lapsed: set[str] = set()
        for account_id in sorted(self.states):
            state = self.states[account_id]
            mine = overrides.get(account_id, [])
            kept = self._kept(account_id) if swapping else None
            for index, scoring in enumerate(self.scorings):
                if kept is not None:
                    _swap_in(state, kept[index])
                result = scoring.score_account(state, as_of, Trigger.sweep, mine, portfolio)
                if kept is not None:
                    _swap_out(state, kept[index])
                lapsed.update(result.lapsed)
                self._on_score(index, account_id, day, result.assessment, state)
                if result.change is not None:
                    changes[index].append(result.change)
                    if self._on_change is not None:
                        self._on_change(index, result.change)
        self.store.settle(overrides, lapsed)
        for alerts, made in zip(self.alerts, changes, strict=True):
            alerts.judge_day(made, as_of)

    def _take_overrides(self, as_of: datetime) -> None:
        """Overrides set or lifted by ``as_of`` become pending, as the API stores them;
        scoring takes them at this close and ``settle`` marks them applied (or lapsed)."""
        kept = self.store.overrides_by_account
        while self._to_set and self._to_set[-1].set_at <= as_of:
            action = self._to_set.pop()
            if action.account_id in self.states:
                pending = StoredOverride(action.override, in_force=True, pending=True)
                kept.setdefault(action.account_id, []).append(pending)
            else:
                self.refused.append(action)
        while self._to_lift and self._to_lift[-1][0] <= as_of:
            _, action = self._to_lift.pop()
            if mine := kept.get(action.account_id):
                kept[action.account_id] = [
                    StoredOverride(o.override, in_force=False, pending=True)
                    if o.override.id == action.override.id and o.in_force
                    else o
                    for o in mine
                ]

    def _kept(self, account_id: str) -> list[dict[str, object]]:
        """What each model's ``rescore`` keeps in the account's state."""
        kept = self._scored.get(account_id)
        if kept is None:
            kept = self._scored[account_id] = [_fresh() for _ in self.models]
        return kept

    def _fold(self, day: date) -> None:
        events = {a: [(e, None) for e in mine] for a, mine in self._pending.items()}
        self.scorings[0].fold(self.states, events)  # the models' limits are the same
        for account_id in events:
            if account_id not in self.cancelled_on and _cancelled(self.states[account_id]):
                self.cancelled_on[account_id] = day
        self._pending.clear()


def _cancelled(state: AccountState) -> bool:
    return state.status is SubscriptionStatus.canceled


def _swap_in(state: AccountState, kept: dict[str, object]) -> None:
    vars(state).update(kept)  # plain attributes: no validation on the hot path


def _swap_out(state: AccountState, kept: dict[str, object]) -> None:
    values = vars(state)
    for name in RESCORED_FIELDS:
        kept[name] = values[name]
