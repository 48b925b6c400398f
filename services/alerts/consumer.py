"""Alerts' batch step: score changes -> rule engine -> alert rows, outbox rows.

Everything a batch produces (alert state, per-account memory, delivery rows, alert
events for ``vitals.alerts``) is written in the consumer's transaction, together
with the consumer offsets: a crash replays the batch and produces it exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

from aiokafka import ConsumerRecord
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import metrics, repository
from services.alerts.configuration import Setup, SetupCache
from services.alerts.delivery import payloads
from services.alerts.delivery.channels import Channel
from services.alerts.documents import JsonObject
from services.alerts.models import AccountCursor, Alert, AlertEventRow, AlertsDeadLetter, Delivery
from services.alerts.models import Silence as SilenceRow
from services.alerts.rules import engine
from services.alerts.service import AccountMemory, Judge
from services.alerts.settings import AlertsSettings
from services.alerts.tasks.starter import TaskStarter
from shared import dead_letter_outbox
from shared.clock import Clock
from shared.consumer import Records
from shared.dlq import DeadLetter, InvalidRecord, decode_record, processor_name
from shared.scores import ScoreChange

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """Metric updates of a batch, applied only once it is committed."""

    opened: list[tuple[str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    transitions: list[tuple[str, str]] = field(default_factory=list)

    def apply(self) -> None:
        for labels in self.opened:
            metrics.ALERTS_OPENED.labels(*labels).inc()
        for labels in self.resolved:
            metrics.ALERTS_RESOLVED.labels(*labels).inc()
        for labels in self.transitions:
            metrics.ALERT_TRANSITIONS.labels(*labels).inc()


class EventRow(TypedDict):
    """A row of ``alert_events_outbox``: every column, for a multi-row insert."""

    id: str
    account_id: str
    event: JsonObject
    created_at: datetime
    ordinal: int


class DeliveryRow(TypedDict):
    """A row of ``alert_deliveries``: every column, for a multi-row insert."""

    id: str
    alert_id: str
    channel: str
    kind: str
    transition: str
    recipients: list[str] | None
    payload: JsonObject
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    message_at: datetime
    dead_at: datetime | None
    last_error: str | None
    ordinal: int


@dataclass
class Outbox:
    """A batch's new alert events and deliveries: insert-only rows, written at once."""

    events: list[EventRow] = field(default_factory=list)
    deliveries: list[DeliveryRow] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        # One multi-row INSERT each instead of the ORM's per-object unit of work.
        if self.events:
            await session.execute(insert(AlertEventRow), self.events)
        if self.deliveries:
            await session.execute(insert(Delivery), self.deliveries)


class AlertsHandler:
    def __init__(
        self,
        settings: AlertsSettings,
        setup_cache: SetupCache,
        clock: Clock,
        wake_dispatcher: asyncio.Event,
        publish: Callable[[], object] | None = None,
    ) -> None:
        self._settings = settings
        self._setup_cache = setup_cache
        self._clock = clock
        self._wake_dispatcher = wake_dispatcher
        self._publish = publish
        self._counts = Counts()
        self._processor = processor_name("alerts")
        self._tasks = TaskStarter(settings)

    async def apply(self, session: AsyncSession, records: Records) -> None:
        self._counts = Counts()
        outbox = Outbox()
        now = self._clock()
        decoded: list[tuple[ScoreChange, ConsumerRecord]] = []
        unreadable: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append((_decode(record), record))
            except InvalidRecord as exc:
                unreadable.append(self._dead_letter(record, "unreadable_score_change", exc.problem))
        await dead_letter_outbox.add(session, AlertsDeadLetter, unreadable, now)
        if not decoded:
            return
        setup = await self._setup_cache.current(session)
        store = SessionAlertsStore(session)
        judge = Judge(setup.rules, self._settings.alerts_health_threshold)
        judgement, memory = await judge.judge(store, decoded, now)
        metrics.SCORES_DUPLICATE.inc(judgement.duplicates)
        store.keep(memory)
        for verdict in judgement.verdicts:
            change, record = verdict.change, verdict.context
            rows = store.rows[change.account_id]
            message_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            for index, decision in enumerate(verdict.decisions):
                order = engine.ordinal(change.sequence, index)
                await self._record(
                    session, outbox, setup, rows, decision, change, now, message_at, order
                )
        await outbox.write(session)
        await self._tasks.apply(session, judgement.verdicts, now)

    async def reject(self, session: AsyncSession, record: ConsumerRecord, problem: str) -> None:
        """A score message whose handling failed: dead-lettered, so its partition moves on."""
        message = f"alerts failed on this score change: {problem}"
        letter = self._dead_letter(record, "processing_failed", message)
        await dead_letter_outbox.add(session, AlertsDeadLetter, [letter], self._clock())

    def _dead_letter(self, record: ConsumerRecord, reason: str, message: str) -> DeadLetter:
        return DeadLetter.of_record(
            record,
            reason=reason,
            message=message,
            rejected_at=self._clock(),
            processor=self._processor,
        )

    def forget(self) -> None:
        """Nothing is kept between batches: the rule state is read in each one."""

    async def after_commit(self) -> None:
        self._counts.apply()
        self._counts = Counts()
        self._wake_dispatcher.set()
        if self._publish is not None:
            self._publish()

    async def _record(
        self,
        session: AsyncSession,
        outbox: Outbox,
        setup: Setup,
        rows: dict[str, Alert],
        decision: engine.Decision,
        change: ScoreChange,
        now: datetime,
        message_at: datetime,
        order: int,
    ) -> None:
        state = decision.alert
        row = rows.get(state.rule)
        if row is None or row.id != state.id:
            if row is not None:
                await session.flush()  # the old episode is stored closed before the new opens
            row = Alert(id=state.id, account_id=change.account_id, rule=state.rule)
            row.episode = state.episode
            session.add(row)
            rows[state.rule] = row
        event = payloads.alert_event(decision, change, now, self._settings.account_link_template())
        _copy_state(row, state, decision, change, now)
        row.last_event = dumped = event.model_dump(mode="json")
        outbox.events.append(
            {
                "id": engine.event_id(state.id, event.type, change.sequence),
                "account_id": change.account_id,
                "event": dumped,
                "created_at": now,
                "ordinal": order,
            }
        )
        self._count(decision, change)
        if decision.notify:
            notice = Notice(state, decision, event, dumped, order)
            for channel_id in setup.route.receivers_for(engine.labels_of(change, state.rule)):
                channel = setup.channels.get(channel_id)
                if channel is None or channel.mode != "immediate" or not channel.enabled:
                    continue
                outbox.deliveries.append(_delivery(channel, notice, now, message_at))

    def _count(self, decision: engine.Decision, change: ScoreChange) -> None:
        rule, tier = decision.alert.rule, change.tier.value if change.tier else "none"
        self._counts.transitions.append((rule, decision.transition.value))
        if decision.transition is engine.Transition.opened:
            self._counts.opened.append((rule, tier))
        elif decision.transition is engine.Transition.resolved:
            self._counts.resolved.append((rule, tier))


class SessionAlertsStore:
    """Alerts' storage in the batch's transaction (``service.AlertsStore``). Keeps the
    rows it read, so that what the judgement changed is written back to them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._cursors: dict[str, AccountCursor] = {}
        self.rows: dict[str, dict[str, Alert]] = defaultdict(dict)
        """Per account, the newest alert row of each rule (new episodes are added)."""

    async def accounts(self, account_ids: set[str]) -> dict[str, AccountMemory]:
        self._cursors = await repository.load_cursors(self._session, account_ids)
        self.rows.update(await repository.latest_alerts(self._session, account_ids))
        return {
            account_id: AccountMemory(
                cursor.last_sequence,
                _history(cursor.health_history),
                {rule: _engine_alert(row) for rule, row in self.rows[account_id].items()},
            )
            for account_id, cursor in self._cursors.items()
        }

    async def silences(self, now: datetime) -> list[engine.Silence]:
        return [_silence(s) for s in await repository.active_silences(self._session, now)]

    def keep(self, memory: dict[str, AccountMemory]) -> None:
        """Write every account's sequence and health history back to its cursor."""
        for account_id, account in memory.items():
            cursor = self._cursors.get(account_id)
            if cursor is None:
                cursor = AccountCursor(account_id=account_id)
                self._session.add(cursor)
            cursor.last_sequence = account.last_sequence
            cursor.health_history = [[at.isoformat(), score] for at, score in account.history]


@dataclass(frozen=True)
class Notice:
    """One decision to tell, the same for every channel it goes to."""

    alert: engine.Alert
    decision: engine.Decision
    event: payloads.AlertEvent
    payload: JsonObject
    ordinal: int


def _delivery(channel: Channel, notice: Notice, now: datetime, message_at: datetime) -> DeliveryRow:
    """The outbox row of one notice to one channel."""
    alert = notice.alert
    recipients = channel.recipients(notice.event.account.owner_csm_email)
    unsendable = recipients == []  # a channel for people, and no one to send to
    return {
        "id": engine.notice_id(alert.id, alert.notifications, channel.id),
        "alert_id": alert.id,
        "channel": channel.id,
        "kind": "notice",
        "transition": notice.decision.transition.value,
        "recipients": recipients,
        "payload": notice.payload,
        "status": "dead" if unsendable else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "message_at": message_at,
        "dead_at": now if unsendable else None,
        "last_error": "no recipient: the account has no owner CSM e-mail" if unsendable else None,
        "ordinal": notice.ordinal,
    }


def _copy_state(
    row: Alert, state: engine.Alert, decision: engine.Decision, change: ScoreChange, now: datetime
) -> None:
    labels = engine.labels_of(change, state.rule)
    row.state, row.severity, row.opened_at = state.state.value, state.severity, state.opened_at
    row.resolved_at, row.last_notified_at = state.resolved_at, state.last_notified_at
    row.notifications = state.notifications
    row.health_score, row.band = change.health_score, change.band.value
    row.tier, row.risk, row.segment = labels.tier, labels.risk, labels.segment
    row.owner_email, row.owner_slack = labels.owner_email, labels.owner_slack
    row.summary, row.details = decision.summary, decision.details
    row.updated_at = now


def _engine_alert(row: Alert) -> engine.Alert:
    return engine.Alert(
        id=row.id,
        account_id=row.account_id,
        rule=row.rule,
        episode=row.episode,
        state=engine.AlertState(row.state),
        severity=row.severity or "",
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        last_notified_at=row.last_notified_at,
        notifications=row.notifications or 0,
        acked_at=row.acked_at,
        snoozed_until=row.snoozed_until,
    )


def _silence(row: SilenceRow) -> engine.Silence:
    return engine.Silence(
        id=row.id,
        ends_at=row.ends_at,
        starts_at=row.starts_at,
        account_id=row.account_id,
        rule=row.rule,
        tier=row.tier,
        owner=row.owner,
    )


def _history(stored: list[list[str | int]] | None) -> engine.HealthHistory:
    return [(datetime.fromisoformat(str(at)), int(str(score))) for at, score in stored or []]


def _decode(record: ConsumerRecord) -> ScoreChange:
    return decode_record(record, ScoreChange.from_bytes, "score change", metrics.SCORES_UNREADABLE)
