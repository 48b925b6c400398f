"""The periodic sweep: re-score every owned account at the current time.

Silence and ageing (recency, staleness, renewal windows, lapsed overrides) change
scores without any event, so every ``scoring_sweep_interval_s`` each replica walks
the accounts of its partitions in id order, one chunk per transaction, between
event batches. Overrides set or lifted through the API are applied here too, within
about a second.

A replica that gains partitions (a rebalance, a restart) starts a new pass once the
current one ends, so accounts it took over do not wait for the next interval.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, repository
from services.scoring.consumer import AccountScorer, ScoringHandler
from services.scoring.service import work_for
from services.scoring.settings import ScoringSettings
from shared.clock import Clock
from shared.scores import Trigger

OVERRIDE_POLL_S = 1.0
OVERRIDE_CHUNK = 200


class Sweep:
    def __init__(
        self,
        settings: ScoringSettings,
        scorer: AccountScorer,
        handler: ScoringHandler,
        clock: Clock,
    ) -> None:
        self._interval = timedelta(seconds=settings.scoring_sweep_interval_s)
        metrics.SWEEP_INTERVAL.set(settings.scoring_sweep_interval_s)  # what overdue means
        self._chunk = settings.scoring_sweep_chunk
        self._scorer = scorer
        self._handler = handler
        self._clock = clock
        self._next_at: datetime | None = None  # None: sweep as soon as partitions arrive
        self._cursor: str | None = None
        self._started_at: datetime | None = None
        self._started_monotonic = 0.0
        self._overrides_checked = 0.0
        self._covered: set[int] = set()  # partitions swept whole since their pass began

    @property
    def sweeping(self) -> bool:
        return self._started_at is not None

    def due(self) -> bool:
        overrides_due = time.monotonic() - self._overrides_checked >= OVERRIDE_POLL_S
        return self.sweeping or overrides_due or self._sweep_due()

    def _sweep_due(self) -> bool:
        return self._next_at is None or self._clock() >= self._next_at

    async def run_chunk(self, session: AsyncSession, owned: set[TopicPartition]) -> bool:
        partitions = {tp.partition for tp in owned}
        if not partitions:
            return False
        if time.monotonic() - self._overrides_checked >= OVERRIDE_POLL_S:
            await self._apply_overrides(session, partitions)
        self._covered &= partitions
        if not self.sweeping and partitions - self._covered:
            self._next_at = None  # partitions gained since the last pass: sweep them now
        if self.sweeping or self._sweep_due():
            await self._sweep_chunk(session, partitions)
        return self.sweeping

    async def _apply_overrides(self, session: AsyncSession, partitions: set[int]) -> None:
        self._overrides_checked = time.monotonic()
        accounts = await repository.accounts_needing_override_work(
            session, partitions, self._clock(), OVERRIDE_CHUNK
        )
        if accounts:
            await self._scorer.process(session, work_for(accounts), Trigger.override)
            self._handler.mark_dirty()

    async def _sweep_chunk(self, session: AsyncSession, partitions: set[int]) -> None:
        if self._started_at is None:
            self._started_at = self._clock()
            self._started_monotonic = time.monotonic()
            self._cursor = None
            self._covered = set(partitions)
            await self._scorer.refresh_portfolio(session)
            await repository.record_portfolio_day(session, self._started_at.date())
        accounts = await repository.sweep_batch(session, partitions, self._cursor, self._chunk)
        if accounts:
            await self._scorer.process(session, work_for(accounts), Trigger.sweep)
            metrics.SWEEP_ACCOUNTS.inc(len(accounts))
            self._cursor = accounts[-1]
            self._handler.mark_dirty()
        if len(accounts) < self._chunk:
            self._next_at = self._started_at + self._interval
            self._started_at = None
            metrics.SWEEP_SECONDS.observe(time.monotonic() - self._started_monotonic)
            metrics.SWEEP_LAST_COMPLETED.set(self._clock().timestamp())
