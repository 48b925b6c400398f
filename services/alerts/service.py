"""Alerts' application layer: judge score changes, the one path the consumer and
``vitals backtest`` share.

``judge`` drops a change at or below its account's last sequence, runs every rule
(``engine.evaluate``) with the account's health history, its newest alert per rule
and the silences in force, and remembers what the next change needs. Storage sits
behind :class:`AlertsStore` in the service (the consumer's batch transaction); the
backtest hands ``judge_loaded`` what it keeps in memory. What a verdict then produces (alert rows,
deliveries, events; or a count of notices) is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from services.alerts.playbooks.model import PlaybookSet
from services.alerts.rules import engine
from services.alerts.rules.kinds import Rule
from services.alerts.tasks.service import TaskPolicy, TaskRow, plan
from shared.scores import ScoreChange

T = TypeVar("T")


@dataclass
class AccountMemory:
    """What alerts keeps of one account between its score changes."""

    last_sequence: int = 0
    history: engine.HealthHistory = field(default_factory=list)
    alerts: dict[str, engine.Alert] = field(default_factory=dict)
    """The newest episode of each rule, open or resolved."""


@dataclass(frozen=True)
class Verdict(Generic[T]):
    """The decisions on one score change, with what the caller passed beside it."""

    change: ScoreChange
    decisions: list[engine.Decision]
    context: T


@dataclass(frozen=True)
class Judgement(Generic[T]):
    verdicts: list[Verdict[T]]
    duplicates: int


class AlertsStore(Protocol):
    async def accounts(self, account_ids: set[str]) -> dict[str, AccountMemory]:
        """The memory of those accounts that have one."""

    async def silences(self, now: datetime) -> list[engine.Silence]:
        """The silences in force at ``now`` or later."""


@dataclass(frozen=True)
class Judge:
    """The rules and the policy every judgement applies."""

    rules: list[Rule]
    risk_absent_high_below: int = 0
    """Health under which a change without a churn risk counts as high risk."""

    async def judge(
        self, store: AlertsStore, changes: Sequence[tuple[ScoreChange, T]], now: datetime
    ) -> tuple[Judgement[T], dict[str, AccountMemory]]:
        """Judge ``changes`` in order; returns the verdicts and every account's memory
        after them (new accounts included), for the caller to keep."""
        memory = await store.accounts({change.account_id for change, _ in changes})
        judgement = self.judge_loaded(memory, await store.silences(now), changes, now)
        return judgement, memory

    def judge_loaded(
        self,
        memory: dict[str, AccountMemory],
        silences: list[engine.Silence],
        changes: Sequence[tuple[ScoreChange, T]],
        now: datetime,
    ) -> Judgement[T]:
        """``judge`` on memory and silences already at hand, updating ``memory``."""
        verdicts: list[Verdict[T]] = []
        duplicates = 0
        for change, context in changes:
            account = memory.setdefault(change.account_id, AccountMemory())
            if change.sequence <= account.last_sequence:
                duplicates += 1
                continue
            verdicts.append(Verdict(change, self._apply(account, change, silences, now), context))
        return Judgement(verdicts, duplicates)

    def _apply(
        self,
        account: AccountMemory,
        change: ScoreChange,
        silences: list[engine.Silence],
        now: datetime,
    ) -> list[engine.Decision]:
        result = engine.evaluate(
            self.rules,
            change,
            account.history,
            account.alerts,
            silences,
            now,
            self.risk_absent_high_below,
        )
        account.last_sequence = change.sequence
        account.history = result.history
        for decision in result.decisions:
            account.alerts[decision.alert.rule] = decision.alert
        return result.decisions


@dataclass
class MemoryAlertsStore:
    """Alerts' storage in memory (the backtest), for ``Judge.judge_loaded``: every
    account's memory, updated in place, and the silences."""

    memory: dict[str, AccountMemory] = field(default_factory=dict)
    silence_list: list[engine.Silence] = field(default_factory=list)

    def active(self, now: datetime) -> list[engine.Silence]:
        """The silences in force at ``now`` or later (as ``AlertsStore.silences``)."""
        return [s for s in self.silence_list if s.ends_at > now]


def start_tasks(
    playbooks: PlaybookSet, verdicts: Sequence[Verdict[Any]], now: datetime, policy: TaskPolicy
) -> list[TaskRow]:
    """The tasks the playbooks start on these verdicts (``tasks.service.plan``), one
    per playbook step and trigger episode; the caller stores them, the consumer in
    its batch transaction."""
    return [
        row
        for verdict in verdicts
        for row in plan(playbooks, verdict.change, verdict.decisions, now, policy)
    ]
