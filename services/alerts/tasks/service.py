"""Tasks' application layer: what playbooks start on a judged score change, and what
people do with the tasks (complete, skip, reassign, snooze).

``plan`` is pure: a score change and its alert decisions in, the new task rows out,
each with an id derived from (playbook, step, account, trigger episode). The alerts
consumer writes them in its batch transaction with an insert that does nothing for
an id already stored (``repository.insert_new``), together with the consumer
offsets, so a task exists exactly once per trigger episode whatever is replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict

from pydantic import JsonValue

from services.alerts.documents import JsonObject
from services.alerts.playbooks.matching import Start, starts
from services.alerts.playbooks.model import QUEUE_PREFIX, OwnerRole, Playbook, PlaybookSet, Step
from services.alerts.rules import engine
from services.alerts.settings import AlertsSettings
from services.alerts.tasks.service_levels import BusinessCalendar, ServiceLevels
from shared.scores import ScoreChange

TASK_ID_NAMESPACE = uuid.UUID("7d1b1f5e-3c1a-4f7e-9a53-2b8f0c6d4e21")
SYSTEM = "vitals"


class TaskState(StrEnum):
    open = "open"
    done = "done"
    skipped = "skipped"


class Outcome(StrEnum):
    reached = "reached"
    saved = "saved"
    escalated = "escalated"
    lost = "lost"
    not_needed = "not_needed"


class TaskRow(TypedDict):
    """A new row of ``alert_tasks``: every column, for a multi-row insert."""

    id: str
    account_id: str
    playbook: str
    playbook_ref: str
    playbook_set: str
    step: str
    trigger: str
    episode: str
    alert_id: str | None
    title: str
    checklist: list[str]
    owner_role: str
    owner: str
    state: str
    outcome: str | None
    note: str | None
    tier: str | None
    stage: str | None
    segment: str | None
    risk: str | None
    due_at: datetime | None
    escalate_at: datetime | None
    escalated_at: datetime | None
    snoozed_until: datetime | None
    cause_resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    sequence: int
    context: JsonObject


@dataclass(frozen=True)
class TaskPolicy:
    """Service levels, the calendar, and who owns what."""

    levels: ServiceLevels
    managers: Mapping[str, str]
    unassigned: str = "queue:unassigned"

    @classmethod
    def from_settings(cls, settings: AlertsSettings) -> TaskPolicy:
        calendar = BusinessCalendar(
            weekdays=settings.alerts_business_weekdays.strip(),
            holidays=tuple(settings.alerts_business_holidays),
            timezone=settings.alerts_business_timezone,
            day_ends_at=settings.alerts_business_day_end,
        )
        levels = ServiceLevels(
            business_days={str(k): v for k, v in settings.alerts_task_service_levels.items()},
            grace={str(k): v for k, v in settings.alerts_task_grace.items()},
            calendar=calendar,
        )
        managers = {
            owner.casefold(): manager for owner, manager in settings.alerts_task_managers.items()
        }
        return cls(levels, managers, settings.alerts_task_unassigned_queue)

    def owner(self, role: str, account_owner: str | None) -> str:
        """Who a step's task goes to: the account's owner, its owner's manager, or a queue."""
        if role.startswith(QUEUE_PREFIX):
            return role
        if account_owner is None:
            return self.unassigned
        if role == OwnerRole.owner_manager:
            return self.managers.get(account_owner.casefold(), self.unassigned)
        return account_owner


@dataclass(frozen=True)
class Subject:
    """The account a playbook runs for, as the task records it."""

    account_id: str
    tier: str | None
    stage: str | None
    segment: str | None
    risk: str | None
    owner: str | None
    sequence: int
    context: JsonObject

    @classmethod
    def of(cls, change: ScoreChange) -> Subject:
        facts = change.account
        return cls(
            account_id=change.account_id,
            tier=change.tier.value if change.tier else None,
            stage=change.stage.value if change.stage else None,
            segment=facts.segment,
            risk=change.risk.value if change.risk else None,
            owner=facts.owner_csm_email or facts.owner_csm_slack,
            sequence=change.sequence,
            context=_context(change),
        )


def task_id(playbook_id: str, step_id: str, account_id: str, episode: str) -> str:
    """The task of one step in one trigger episode: the same for every replay."""
    key = f"{playbook_id}/{step_id}/{account_id}/{episode}"
    return str(uuid.uuid5(TASK_ID_NAMESPACE, key))


def plan(
    playbooks: PlaybookSet,
    change: ScoreChange,
    decisions: list[engine.Decision],
    now: datetime,
    policy: TaskPolicy,
) -> list[TaskRow]:
    """The tasks the playbooks start on ``change``, one per step of each start."""
    subject = Subject.of(change)
    return [
        _row(playbooks.ref, start, step, subject, now, policy)
        for start in starts(playbooks.enabled, change, decisions)
        for step in start.playbook.steps
    ]


def plan_manual(
    playbooks: PlaybookSet,
    playbook: Playbook,
    subject: Subject,
    key: str,
    now: datetime,
    policy: TaskPolicy,
) -> list[TaskRow]:
    """The tasks of a playbook started by hand; ``key`` names the run (the same key
    starts nothing new)."""
    start = Start(playbook, f"manual:{key}")
    return [_row(playbooks.ref, start, step, subject, now, policy) for step in playbook.steps]


def _row(
    playbook_set: str,
    start: Start,
    step: Step,
    subject: Subject,
    now: datetime,
    policy: TaskPolicy,
) -> TaskRow:
    playbook, tier = start.playbook, subject.tier
    due_at = policy.levels.due(tier, now, step.due_in_business_days)
    return {
        "id": task_id(playbook.id, step.id, subject.account_id, start.episode),
        "account_id": subject.account_id,
        "playbook": playbook.id,
        "playbook_ref": playbook.ref,
        "playbook_set": playbook_set,
        "step": step.id,
        "trigger": _trigger_name(playbook),
        "episode": start.episode,
        "alert_id": start.alert_id,
        "title": step.title,
        "checklist": list(step.checklist),
        "owner_role": step.owner,
        "owner": policy.owner(step.owner, subject.owner),
        "state": TaskState.open.value,
        "outcome": None,
        "note": None,
        "tier": tier,
        "stage": subject.stage,
        "segment": subject.segment,
        "risk": subject.risk,
        "due_at": due_at,
        "escalate_at": policy.levels.escalate_at(tier, due_at),
        "escalated_at": None,
        "snoozed_until": None,
        "cause_resolved_at": None,
        "created_at": now,
        "updated_at": now,
        "closed_at": None,
        "sequence": subject.sequence,
        "context": subject.context,
    }


def _trigger_name(playbook: Playbook) -> str:
    trigger = playbook.trigger
    detail = getattr(trigger, "rule", None) or getattr(trigger, "stage", None)
    return f"{trigger.kind}:{detail}" if detail else trigger.kind


def _context(change: ScoreChange) -> JsonObject:
    """What the escalation notice tells of the account, as of the trigger."""
    dumped: JsonObject = change.model_dump(
        mode="json",
        include={
            "account",
            "health_score",
            "previous_score",
            "band",
            "components",
            "previous_tier",
            "computed_at",
            "risk_reasons",
        },
    )
    return dumped


# --- acting on a task ------------------------------------------------------------------


class TaskConflict(Exception):
    """The action is not possible in the task's state."""


@dataclass(frozen=True)
class Complete:
    outcome: Outcome
    note: str | None = None


@dataclass(frozen=True)
class Skip:
    note: str | None = None


@dataclass(frozen=True)
class Reassign:
    owner: str
    note: str | None = None


@dataclass(frozen=True)
class Snooze:
    until: datetime
    note: str | None = None


Action = Complete | Skip | Reassign | Snooze


Changes = dict[str, object]
"""Fields of a task an action sets, by column name."""


def changes_for(
    current: Mapping[str, object], action: Action, now: datetime, grace: timedelta
) -> tuple[str, Changes]:
    """The action's name and the fields it sets; raises TaskConflict unless the task
    is open (a closed task is history)."""
    if current["state"] != TaskState.open:
        raise TaskConflict(f"the task is {current['state']}; only open tasks change")
    changes: Changes = {"note": action.note} if action.note is not None else {}
    if isinstance(action, Complete):
        changes |= {"state": TaskState.done.value, "outcome": action.outcome.value}
        return "completed", changes | {"closed_at": now}
    if isinstance(action, Skip):
        return "skipped", changes | {"state": TaskState.skipped.value, "closed_at": now}
    if isinstance(action, Reassign):
        return "reassigned", changes | {"owner": action.owner}
    if action.until <= now:
        raise TaskConflict("the snooze must end in the future")
    changes["snoozed_until"] = action.until
    escalate_at = current.get("escalate_at")
    if isinstance(escalate_at, datetime) and current.get("escalated_at") is None:
        # Snoozed work is not escalated while it sleeps, nor before its grace after.
        changes["escalate_at"] = max(escalate_at, action.until + grace)
    return "snoozed", changes


def history_changes(current: Mapping[str, object], changed: Mapping[str, object]) -> JsonObject:
    """``{field: [before, after]}`` of what an action changed, as JSON."""
    return {
        name: [_json(current.get(name)), _json(value)]
        for name, value in changed.items()
        if current.get(name) != value
    }


def _json(value: object) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
