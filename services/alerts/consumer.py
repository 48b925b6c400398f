"""Alerts' batch step: score changes -> alert transitions -> outbox rows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import domain, metrics, repository
from services.alerts.models import AccountCursor, Alert, Delivery
from services.alerts.settings import AlertsSettings
from shared.consumer import Records
from shared.scores import ScoreChange

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WEBHOOK_CHANNEL = "webhook"


class AlertsHandler:
    def __init__(self, settings: AlertsSettings, clock: Clock, wake_dispatcher: asyncio.Event):
        self._settings = settings
        self._clock = clock
        self._wake_dispatcher = wake_dispatcher
        self._rule = domain.HEALTH_BELOW_THRESHOLD

    async def apply(self, session: AsyncSession, records: Records) -> None:
        changes = [c for c in map(_decode, records) if c is not None]
        accounts = {c.account_id for c in changes}
        cursors = await repository.load_cursors(session, accounts)
        latest = await repository.latest_alerts(session, accounts, self._rule)
        for change in changes:
            cursor = cursors.get(change.account_id)
            if cursor is not None and change.sequence <= cursor.last_sequence:
                metrics.SCORES_DUPLICATE.inc()
                continue
            if cursor is None:
                cursor = cursors[change.account_id] = AccountCursor(account_id=change.account_id)
                session.add(cursor)
            cursor.last_sequence = change.sequence
            alert = self._transition(session, latest.get(change.account_id), change)
            if alert is not None:
                latest[change.account_id] = alert

    async def after_commit(self) -> None:
        self._wake_dispatcher.set()

    def _transition(
        self, session: AsyncSession, current: Alert | None, change: ScoreChange
    ) -> Alert | None:
        is_open = current is not None and current.state == "open"
        threshold = self._settings.alerts_health_threshold
        transition = domain.evaluate_health(change, is_open, threshold)
        if transition is None:
            return None
        now = self._clock()
        if transition is domain.Transition.opened:
            episode = current.episode + 1 if current else 1
            alert = Alert(
                id=domain.alert_id(change.account_id, self._rule, episode),
                account_id=change.account_id,
                rule=self._rule,
                episode=episode,
                state="open",
                opened_at=now,
            )
            session.add(alert)
        else:
            assert current is not None
            alert = current
            alert.state = "resolved"
            alert.resolved_at = now
        payload = domain.webhook_payload(alert.id, self._rule, transition, change, threshold)
        alert.health_score = change.health_score
        alert.band = change.band.value
        alert.summary = payload["summary"]
        metrics.ALERT_TRANSITIONS.labels(self._rule, transition.value).inc()
        if self._settings.alerts_webhook_url is not None:
            session.add(
                Delivery(
                    id=domain.delivery_id(alert.id, transition, WEBHOOK_CHANNEL),
                    alert_id=alert.id,
                    channel=WEBHOOK_CHANNEL,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        return alert


def _decode(record: ConsumerRecord) -> ScoreChange | None:
    try:
        return ScoreChange.from_bytes(record.value or b"")
    except ValidationError as exc:
        metrics.SCORES_UNREADABLE.inc()
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.error("unreadable score change at %s skipped: %s", where, exc.errors(include_url=False))
        return None
