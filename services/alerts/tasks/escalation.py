"""Escalation of overdue tasks: a periodic job that tells the escalation route once.

An open task past its due time plus its tier's grace (``escalate_at``) is escalated
in one transaction: its outbox rows (one per channel the routing tree gives the
labels ``rule: task_overdue``, tier, risk, segment, owner) and its ``escalated_at``
are written together, with the rows claimed ``FOR UPDATE SKIP LOCKED``, so each task
is escalated once across replicas, restarts and crashes. The dispatcher delivers the
rows like any notice (same channels, retries and ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from services.alerts.configuration import SetupCache
from services.alerts.consumer import DeliveryRow
from services.alerts.delivery.payloads import AlertEvent, account_link
from services.alerts.documents import JsonObject
from services.alerts.models import Delivery, Task
from services.alerts.rules import engine
from services.alerts.settings import AlertsSettings
from services.alerts.tasks import repository
from services.alerts.tasks.service import SYSTEM
from shared.clock import Clock
from shared.db import SessionFactory
from shared.scores import AccountFacts

log = logging.getLogger(__name__)

ESCALATION_RULE = "task_overdue"
CLAIM_BATCH = 100
NAMESPACE = uuid.UUID("0f3c55a2-8a61-4f0e-b0a1-5d6e9c2b7f44")


def escalation_id(task_id: str, channel_id: str) -> str:
    """The outbox row (and ``webhook-id``) of a task's escalation to one channel."""
    return str(uuid.uuid5(NAMESPACE, f"{task_id}/{channel_id}"))


class Escalator:
    def __init__(
        self,
        settings: AlertsSettings,
        setup_cache: SetupCache,
        sessions: SessionFactory,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._setup_cache = setup_cache
        self._sessions = sessions
        self._clock = clock

    async def run(self) -> None:
        """Escalate what is due every ``VITALS_ALERTS_TASK_ESCALATION_INTERVAL_S``."""
        while True:
            try:
                while await self.escalate_due() == CLAIM_BATCH:
                    pass
            except (SQLAlchemyError, OSError) as exc:
                log.warning("task escalation failed, retrying: %s", exc)
            await asyncio.sleep(self._settings.alerts_task_escalation_interval_s)

    async def escalate_due(self) -> int:
        """Escalate one batch of due tasks; how many."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            due = await repository.due_escalations(session, now, CLAIM_BATCH)
            if not due:
                return 0
            setup = await self._setup_cache.current(session)
            rows: list[DeliveryRow] = []
            history = []
            for task in due:
                labels = _labels(task)
                payload = self._payload(task, now)
                for channel_id in setup.route.receivers_for(labels):
                    channel = setup.channels.get(channel_id)
                    if channel is None or channel.mode != "immediate" or not channel.enabled:
                        continue
                    rows.append(
                        _delivery(
                            task, channel_id, channel.recipients(labels.owner_email), payload, now
                        )
                    )
                task.escalated_at, task.updated_at = now, now
                history.append(
                    repository.history_row(
                        task.id, now, SYSTEM, "escalated", {"overdue_since": _iso(task.due_at)}
                    )
                )
            if rows:
                await session.execute(insert(Delivery), rows)
            await repository.add_history(session, history)
        return len(due)

    def _payload(self, task: Task, now: datetime) -> JsonObject:
        context = task.context
        due = task.due_at.isoformat() if task.due_at else "-"
        try:
            account = AccountFacts.model_validate(context.get("account") or {})
        except ValidationError:
            account = AccountFacts()
        event = AlertEvent(
            type="alert.escalated",
            alert_id=task.id,
            rule=ESCALATION_RULE,
            episode=1,
            notification=1,
            state="open",
            severity="overdue",
            account_id=task.account_id,
            account=account,
            tier=task.tier,
            previous_tier=_text(context.get("previous_tier")),
            risk=task.risk,
            health_score=_int(context.get("health_score")),
            previous_score=None,
            band=_text(context.get("band")) or "",
            components={},
            summary=f"Task overdue: {task.title} (owner {task.owner}, due {due})",
            details={
                "task": {
                    "id": task.id,
                    "title": task.title,
                    "owner": task.owner,
                    "playbook": task.playbook_ref,
                    "due_at": due,
                    "checklist": list(task.checklist),
                }
            },
            sequence=task.sequence,
            computed_at=now,
            occurred_at=now,
            link=account_link(self._settings.account_link_template(), task.account_id),
        )
        dumped: JsonObject = event.model_dump(mode="json")
        return dumped


def _labels(task: Task) -> engine.Labels:
    account = task.context.get("account")
    facts = account if isinstance(account, dict) else {}
    return engine.Labels(
        account_id=task.account_id,
        rule=ESCALATION_RULE,
        tier=task.tier,
        risk=task.risk,
        segment=task.segment,
        owner_email=_text(facts.get("owner_csm_email")),
        owner_slack=_text(facts.get("owner_csm_slack")),
    )


def _delivery(
    task: Task, channel_id: str, recipients: list[str] | None, payload: JsonObject, now: datetime
) -> DeliveryRow:
    unsendable = recipients == []
    return {
        "id": escalation_id(task.id, channel_id),
        "alert_id": task.id,
        "channel": channel_id,
        "kind": "escalation",
        "transition": "escalated",
        "recipients": recipients,
        "payload": payload,
        "status": "dead" if unsendable else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "message_at": now,
        "dead_at": now if unsendable else None,
        "last_error": "no recipient: the account has no owner CSM e-mail" if unsendable else None,
        "ordinal": 0,
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
