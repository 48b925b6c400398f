"""Scoring's application layer: the one path from events and the clock to scores,
shared by the consumer, the sweep and ``vitals backtest``.

- ``fold``: events into account states (dedupe by id, lateness); new accounts begin.
- ``score_account``: one account scored at a moment, with the CSM overrides in force.
- ``process``: both for a unit of work, through a :class:`ScoringStore`; what the
  consumer does with a batch and the sweep with a chunk of accounts.

``process`` stores through :class:`ScoringStore`, PostgreSQL in the service
(``services.scoring.store``). The backtest calls ``fold`` and ``score_account``
itself on :class:`MemoryScoringStore`: it folds a day's events once and scores every
account at the day's end under each model it compares, also an account whose events
changed nothing, which ``process`` leaves to the sweep.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from services.scoring.domain import (
    AccountState,
    ApplyResult,
    Assessment,
    Limits,
    Override,
    Portfolio,
    Rescored,
    apply_events,
    rescore,
    scorecard_for,
)
from services.scoring.scorecard import ScorecardSet
from shared.events import Event
from shared.scores import ScoreChange, Trigger

T = TypeVar("T")
YIELD_EVERY = 50


@dataclass
class AccountWork(Generic[T]):
    """An account's share of a unit of work: its events (each with what the caller
    needs to dead-letter it), and the partition it came from, if known."""

    events: list[tuple[Event, T]] = field(default_factory=list)
    partition: int | None = None


def work_for(account_ids: Iterable[str]) -> dict[str, AccountWork[T]]:
    """Work without events: score these accounts at the current time."""
    return {account_id: AccountWork() for account_id in account_ids}


@dataclass(frozen=True)
class StoredOverride:
    """A CSM's override as stored: in force until lifted or lapsed; pending until a
    score has taken it (or its lifting) into account."""

    override: Override
    in_force: bool
    pending: bool


@dataclass(frozen=True)
class StateWrite:
    """An account's state after a unit of work, and what it was scored (``None``: not)."""

    state: AccountState
    assessment: Assessment | None
    trend_7d: int | None
    partition: int | None


@dataclass
class Folded(Generic[T]):
    """What folding events did: per account, how many applied; the events too late."""

    applied: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late: list[tuple[Event, T, AccountState]] = field(default_factory=list)


@dataclass
class Scored:
    writes: list[StateWrite] = field(default_factory=list)
    changes: list[ScoreChange] = field(default_factory=list)
    lapsed: list[str] = field(default_factory=list)
    """Overrides that expired, marked lapsed when saved."""


@dataclass
class Processed(Generic[T]):
    folded: Folded[T]
    scored: Scored


class ScoringStore(Protocol):
    async def states(self, account_ids: Collection[str]) -> dict[str, AccountState]:
        """The states of those accounts that exist."""

    async def overrides(self, account_ids: Collection[str]) -> dict[str, list[StoredOverride]]:
        """Per account, its overrides in force or pending, oldest first."""

    async def portfolio(self) -> Portfolio:
        """The revenue distribution that value tiers rank an account in."""

    async def save(self, scored: Scored, overridden: Collection[str], now: datetime) -> None:
        """Keep the states and changes; settle the overrides of ``overridden``."""


@dataclass(frozen=True)
class Scoring:
    """The scorecards and limits every unit of work applies."""

    scorecards: ScorecardSet
    limits: Limits

    def fold(
        self, states: dict[str, AccountState], events: Mapping[str, Sequence[tuple[Event, T]]]
    ) -> Folded[T]:
        """Fold each account's events into its state (created when new), in place."""
        folded: Folded[T] = Folded()
        for account_id, mine in events.items():
            state = states.get(account_id)
            if state is None:
                state = states[account_id] = AccountState(account_id=account_id)
            outcomes = apply_events(state, (event for event, _ in mine), self.limits)
            folded.applied[account_id] = outcomes.count(ApplyResult.applied)
            folded.duplicates += outcomes.count(ApplyResult.duplicate)
            for (event, context), outcome in zip(mine, outcomes, strict=True):
                if outcome is ApplyResult.too_late:
                    folded.late.append((event, context, state))
        return folded

    def score_account(
        self,
        state: AccountState,
        now: datetime,
        trigger: Trigger,
        overrides: Sequence[StoredOverride] = (),
        portfolio: Portfolio | None = None,
    ) -> Rescored:
        """Score one account at ``now`` under its scorecard; a pending override makes
        the change's trigger ``override``."""
        pending = any(o.pending for o in overrides)
        return rescore(
            state,
            now,
            scorecard_for(state, self.scorecards),
            portfolio=portfolio,
            overrides=[o.override for o in overrides if o.in_force],
            trigger=Trigger.override if pending else trigger,
        )

    async def process(
        self,
        store: ScoringStore,
        work: Mapping[str, AccountWork[T]],
        now: datetime,
        trigger: Trigger,
    ) -> Processed[T]:
        """Fold the work's events, score every account they changed and every account
        without events, and save it all through ``store``."""
        states = await store.states(work.keys())
        folded = self.fold(states, {a: w.events for a, w in work.items() if w.events})
        overrides = await store.overrides(work.keys()) if states else {}
        portfolio = await store.portfolio()
        scored = Scored()
        for done, account_id in enumerate(sorted(work), start=1):
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let heartbeats and API requests run
            state = states.get(account_id)
            mine = overrides.get(account_id, [])
            if state is None or not _to_score(account_id, work, folded, mine):
                continue
            result = self.score_account(state, now, trigger, mine, portfolio)
            _add(scored, state, result, work[account_id].partition)
        await store.save(scored, overrides.keys(), now)
        return Processed(folded, scored)


def _to_score(
    account_id: str,
    work: Mapping[str, AccountWork[T]],
    folded: Folded[T],
    overrides: Sequence[StoredOverride],
) -> bool:
    """Only repeats or late events: nothing changed, the sweep ages it."""
    if not work[account_id].events:
        return True
    return folded.applied.get(account_id, 0) > 0 or any(o.pending for o in overrides)


def _add(scored: Scored, state: AccountState, result: Rescored, partition: int | None) -> None:
    scored.writes.append(StateWrite(state, result.assessment, result.trend_7d, partition))
    scored.lapsed.extend(result.lapsed)
    if result.change is not None:
        scored.changes.append(result.change)


@dataclass
class MemoryScoringStore:
    """Scoring's storage in memory (the backtest): the states, folded and scored in
    place by ``Scoring.fold`` and ``score_account``, and overrides that settle as the
    service's do."""

    states_by_id: dict[str, AccountState] = field(default_factory=dict)
    overrides_by_account: dict[str, list[StoredOverride]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def portfolio(self) -> Portfolio:
        return Portfolio.of(
            mrr for s in self.states_by_id.values() if (mrr := s.mrr_minor) is not None
        )

    def unsettled(self, account_ids: Collection[str]) -> dict[str, list[StoredOverride]]:
        """Per account, its overrides in force or pending (as ``ScoringStore.overrides``)."""
        mine = ((a, self.overrides_by_account.get(a)) for a in account_ids)
        return {a: [o for o in found if o.in_force or o.pending] for a, found in mine if found}

    def settle(self, account_ids: Iterable[str], lapsed: Collection[str]) -> None:
        """Taken into account: no longer pending; expired ones lapse (out of force)."""
        for account_id in account_ids:
            self.overrides_by_account[account_id] = [
                StoredOverride(o.override, o.in_force and o.override.id not in lapsed, False)
                for o in self.overrides_by_account[account_id]
            ]
