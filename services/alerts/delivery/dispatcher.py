"""Delivers outbox rows to their channel, retrying with backoff, never twice at once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and stay locked until their outcome
is committed, so several replicas can run a dispatcher on one database without
sending the same delivery twice. Within a claimed batch, channels are served in
parallel and each channel's rows in order, paced per Slack webhook; a receiver's
Retry-After postpones the whole channel, so does a receiver that cannot be reached
(until the failed row's next attempt, at most a minute), and 410 Gone disables it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import metrics, repository
from services.alerts.configuration import Setup, SetupCache
from services.alerts.delivery import schedule
from services.alerts.delivery.channels import Channel, ChannelBase
from services.alerts.delivery.payloads import AlertEvent, Digest
from services.alerts.delivery.senders import Senders, SendFailed
from services.alerts.models import Alert, Delivery
from services.alerts.rules import engine
from services.alerts.settings import AlertsSettings
from shared.clock import Clock
from shared.db import SessionFactory, upsert
from shared.errors import describe
from shared.faults import OutageLog

log = logging.getLogger(__name__)

CLAIM_BATCH = 20
DIGEST_CHECK_INTERVAL_S = 1.0
GAUGE_INTERVAL_S = 2.0


@dataclass
class ChannelOutcome:
    gone: str | None = None
    pause_until: datetime | None = None
    delivered: list[str] | None = None


class Dispatcher:
    def __init__(
        self,
        settings: AlertsSettings,
        setup_cache: SetupCache,
        sessions: SessionFactory,
        clock: Clock,
        wake: asyncio.Event,
        jitter: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._setup_cache = setup_cache
        self._sessions = sessions
        self._clock = clock
        self._wake = wake
        self._jitter = jitter or random.Random()
        self._senders = Senders(setup_cache.files.policy, settings.alerts_delivery_timeout_s)
        self._slots: dict[str, float] = {}
        self._digested: set[tuple[str, date]] = set()
        self._outage = OutageLog(log, "dispatcher's database")
        self._gauges_at = 0.0
        self._digests_at = 0.0

    async def run(self) -> None:
        while True:
            # Cleared before looking, so a wake-up during the round is not lost.
            self._wake.clear()
            try:
                busy = await self.dispatch_due()
                if time.monotonic() - self._digests_at >= DIGEST_CHECK_INTERVAL_S:
                    self._digests_at = time.monotonic()
                    await self.make_digests()
                await self._update_gauges()
            except (SQLAlchemyError, OSError) as exc:
                self._outage.failed(describe(exc), self._settings.alerts_dispatch_interval_s)
                busy = False
            else:
                self._outage.recovered()
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.alerts_dispatch_interval_s
                    )

    async def close(self) -> None:
        await self._senders.close()

    async def dispatch_due(self) -> bool:
        """Send one batch of due deliveries; ``True`` when there may be more.

        Rows of a paused channel (the receiver sent Retry-After, or could not be
        reached) are moved to the end of the pause without an attempt.
        """
        async with self._sessions() as session, session.begin():
            due = await repository.due_deliveries(session, self._clock(), CLAIM_BATCH)
            if not due:
                return False
            setup = await self._setup_cache.current(session)
            by_channel: dict[str, list[Delivery]] = {}
            for delivery in due:
                by_channel.setdefault(delivery.channel, []).append(delivery)
            outcomes = await asyncio.gather(
                *(self._serve(setup, cid, rows) for cid, rows in by_channel.items())
            )
            for channel_id, outcome in zip(by_channel, outcomes, strict=True):
                await self._settle(session, channel_id, outcome)
        return len(due) == CLAIM_BATCH

    async def _serve(self, setup: Setup, channel_id: str, rows: list[Delivery]) -> ChannelOutcome:
        """Send a channel's rows: one alert's notices in order, several alerts at once
        (one at a time to a paced Slack webhook)."""
        channel = setup.channels.get(channel_id)
        outcome = ChannelOutcome()
        paused = setup.paused.get(channel_id)
        if paused is not None and paused > self._clock():
            outcome.pause_until = paused  # another round (or replica) was asked to wait
        chains: dict[str, list[Delivery]] = {}
        for row in rows:
            # Digests of one day share an alert_id, yet each owner's stands alone.
            chains.setdefault(row.id if row.kind == "digest" else row.alert_id, []).append(row)
        slots = asyncio.Semaphore(channel.parallel if channel is not None else ChannelBase.parallel)

        async def serve_chain(chain: list[Delivery]) -> None:
            async with slots:
                await self._serve_chain(setup, channel, channel_id, chain, outcome)

        await asyncio.gather(*(serve_chain(chain) for chain in chains.values()))
        return outcome

    async def _serve_chain(
        self,
        setup: Setup,
        channel: Channel | None,
        channel_id: str,
        chain: list[Delivery],
        outcome: ChannelOutcome,
    ) -> None:
        """One alert's rows in order; after a failure the rest wait for the failed one."""
        held_until: datetime | None = None
        for row in chain:
            stop = self._unsendable(setup, channel, channel_id, outcome)
            if stop is not None:
                self._dead(row, stop, "dead")
                continue
            wait = outcome.pause_until or held_until
            if wait is not None:
                row.next_attempt_at = wait  # not an attempt: the receiver or the order asks
                continue
            assert channel is not None
            await self._pace(channel)
            await self._attempt(channel, row, outcome)
            if row.status == "pending":
                held_until = row.next_attempt_at

    def _unsendable(
        self, setup: Setup, channel: Channel | None, channel_id: str, outcome: ChannelOutcome
    ) -> str | None:
        if channel is None:
            return f"channel {channel_id} no longer exists"
        reason = outcome.gone or setup.disabled.get(channel_id)
        if reason is not None:
            return f"channel {channel_id} is disabled: {reason}"
        if not channel.enabled:
            return f"channel {channel_id} is disabled"
        return None

    async def _attempt(self, channel: Channel, row: Delivery, outcome: ChannelOutcome) -> None:
        started = time.perf_counter()
        row.attempts += 1
        try:
            await self._senders.send(channel, row.id, row.payload, row.recipients or [])
        except SendFailed as exc:
            self._failed(row, exc, outcome)
        else:
            row.status, row.delivered_at, row.last_error = "delivered", self._clock(), None
            metrics.DELIVERIES.labels(channel.id, "delivered").inc()
            if row.message_at is not None:
                waited = max(0.0, time.time() - row.message_at.timestamp())
                metrics.SCORE_TO_DELIVERY_SECONDS.labels(channel.kind).observe(waited)
        metrics.DELIVERY_SECONDS.labels(channel.id).observe(time.perf_counter() - started)

    def _failed(self, row: Delivery, exc: SendFailed, outcome: ChannelOutcome) -> None:
        row.last_error = str(exc)
        if exc.gone:
            outcome.gone = str(exc)
            self._dead(row, str(exc), "gone")
            return
        delay = None
        if not exc.permanent:
            delay = schedule.retry_delay(
                row.attempts,
                self._settings.alerts_delivery_max_attempts,
                exc.retry_after_s,
                self._jitter.random(),
                timedelta(seconds=self._settings.alerts_retry_max_wait_s),
            )
        if delay is None:
            self._dead(row, str(exc), "dead")
            log.error(
                "delivery %s to %s is dead after %d attempts: %s",
                row.id,
                row.channel,
                row.attempts,
                exc,
            )
            return
        row.next_attempt_at = delay_end = self._clock() + delay
        if exc.retry_after_s is not None or exc.unreachable:
            # The receiver asked to wait, or nothing answers: the channel's other rows
            # wait without an attempt, and the next due one probes it again.
            outcome.pause_until = max(outcome.pause_until or delay_end, delay_end)
        metrics.DELIVERIES.labels(row.channel, "retry").inc()

    def _dead(self, row: Delivery, reason: str, outcome: str) -> None:
        row.status, row.dead_at, row.last_error = "dead", self._clock(), reason
        metrics.DELIVERIES.labels(row.channel, outcome).inc()

    async def _settle(
        self, session: AsyncSession, channel_id: str, outcome: ChannelOutcome
    ) -> None:
        """Store what the receiver told of its channel: gone (disabled), or wait until."""
        if outcome.gone is not None:
            metrics.CHANNELS_DISABLED.labels(channel_id).inc()
            log.error("channel %s disabled: %s", channel_id, outcome.gone)
        pause = outcome.pause_until
        if outcome.gone is None and pause is None:
            return
        row = await repository.channel_row(session, channel_id)
        if row is None:
            return
        later = pause is not None and (row.paused_until is None or row.paused_until < pause)
        if outcome.gone is None and not later:
            return  # paused until then already: no change for the replicas to parse
        await repository.raise_config_revision(session)
        if outcome.gone is not None:
            row.disabled_reason, row.updated_at = outcome.gone, self._clock()
        if later:
            row.paused_until = pause

    async def _pace(self, channel: Channel) -> None:
        """About ``per_second`` messages per second to one Slack webhook, from this replica."""
        per_second = channel.paced_per_second()
        if per_second is None:
            return
        now = time.monotonic()
        slot = max(now, self._slots.get(channel.id, 0.0))
        self._slots[channel.id] = slot + 1 / per_second
        if slot > now:
            await asyncio.sleep(slot - now)

    # --- digests -----------------------------------------------------------------------

    async def make_digests(self) -> None:
        """Queue today's digest of each digest channel once its hour has come."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            setup = await self._setup_cache.current(session)
            due = [
                (channel, day)
                for channel in setup.channels.values()
                if channel.mode == "digest" and channel.enabled
                if (day := schedule.digest_day(now, channel.digest_hour_utc)) is not None
                if (channel.id, day) not in self._digested
            ]
            if not due:
                return
            alerts = await repository.open_alerts(session)
            for channel, day in due:
                await self._queue_digests(session, setup, channel, day, alerts, now)
        self._digested.update((channel.id, day) for channel, day in due)
        self._wake.set()

    async def _queue_digests(
        self,
        session: AsyncSession,
        setup: Setup,
        channel: Channel,
        day: date,
        alerts: Sequence[Alert],
        now: datetime,
    ) -> None:
        groups: dict[str, list[Alert]] = {}
        for alert in alerts:
            labels = _labels(alert)
            if alert.last_event and channel.id in setup.route.receivers_for(labels):
                owner = alert.owner_email or alert.owner_slack or "(no owner)"
                groups.setdefault(owner, []).append(alert)
        for owner, owned in groups.items():
            events = [AlertEvent.model_validate(a.last_event) for a in owned]
            digest = Digest(owner=owner, day=day.isoformat(), alerts=events)
            recipients = channel.recipients(owned[0].owner_email)
            statement = upsert(session, cast(Table, Delivery.__table__)).values(
                id=engine.digest_id(channel.id, day.isoformat(), owner),
                alert_id=f"digest-{day}",
                channel=channel.id,
                kind="digest",
                transition="digest",
                recipients=recipients,
                payload=digest.model_dump(mode="json"),
                status="dead" if recipients == [] else "pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                dead_at=now if recipients == [] else None,
                last_error="no recipient: the owner has no e-mail" if recipients == [] else None,
            )
            await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))

    async def _update_gauges(self) -> None:
        if time.monotonic() - self._gauges_at < GAUGE_INTERVAL_S:
            return
        self._gauges_at = time.monotonic()
        async with self._sessions() as session:
            pending, oldest, dead = await repository.outbox_backlog(session)
        age = (self._clock() - oldest).total_seconds() if oldest is not None else 0.0
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE_SECONDS.set(max(age, 0.0))
        metrics.DELIVERIES_DEAD.set(dead)


def _labels(alert: Alert) -> engine.Labels:
    return engine.Labels(
        account_id=alert.account_id,
        rule=alert.rule,
        tier=alert.tier,
        risk=alert.risk,
        segment=alert.segment,
        owner_email=alert.owner_email,
        owner_slack=alert.owner_slack,
    )
