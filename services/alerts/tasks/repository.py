"""Every statement on tasks and their history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.documents import JsonObject
from services.alerts.models import Task, TaskHistory
from services.alerts.tasks.service import SYSTEM, TaskRow, TaskState
from shared.db import upsert

TASKS = Task.metadata.tables[Task.__tablename__]


async def insert_new(session: AsyncSession, rows: Sequence[TaskRow], now: datetime) -> list[str]:
    """Insert the tasks not stored yet (by id) and their ``created`` history; the ids
    of those inserted."""
    if not rows:
        return []
    statement = (
        upsert(session, TASKS)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(TASKS.c.id)
    )
    inserted = set((await session.execute(statement)).scalars())
    history = [
        history_row(
            row["id"],
            now,
            SYSTEM,
            "created",
            {"owner": row["owner"], "due_at": _iso(row["due_at"])},
        )
        for row in rows
        if row["id"] in inserted
    ]
    await add_history(session, history)
    return [row["id"] for row in rows if row["id"] in inserted]


async def mark_cause_resolved(session: AsyncSession, alert_ids: set[str], now: datetime) -> None:
    """Tasks started by these alerts stay as they are, marked: their cause resolved."""
    if not alert_ids:
        return
    statement = (
        update(Task)
        .where(Task.alert_id.in_(alert_ids), Task.cause_resolved_at.is_(None))
        .values(cause_resolved_at=now, updated_at=now)
        .returning(Task.id)
    )
    marked = list((await session.execute(statement)).scalars())
    await add_history(
        session,
        [history_row(task_id, now, SYSTEM, "cause_resolved", {}) for task_id in marked],
    )


async def add_history(session: AsyncSession, rows: list[HistoryRow]) -> None:
    if rows:
        await session.execute(insert(TaskHistory), rows)


class HistoryRow(TypedDict):
    """A row of ``alert_task_history``."""

    task_id: str
    at: datetime
    actor: str
    action: str
    changes: JsonObject


def history_row(
    task_id: str, at: datetime, actor: str, action: str, changes: JsonObject
) -> HistoryRow:
    return {"task_id": task_id, "at": at, "actor": actor, "action": action, "changes": changes}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def get(session: AsyncSession, task_id: str, *, lock: bool = False) -> Task | None:
    query = select(Task).where(Task.id == task_id)
    if lock:
        query = query.with_for_update()
    found: Task | None = (await session.scalars(query)).first()
    return found


async def history(session: AsyncSession, task_id: str) -> Sequence[TaskHistory]:
    query = select(TaskHistory).where(TaskHistory.task_id == task_id).order_by(TaskHistory.id)
    return (await session.scalars(query)).all()


@dataclass(frozen=True)
class TaskFilter:
    owner: str | None = None
    tier: str | None = None
    state: str | None = None
    due_before: datetime | None = None
    outcome: str | None = None
    playbook: str | None = None
    overdue_at: datetime | None = None
    """Only open tasks due before this time (the list's ``overdue=true``: now)."""
    account_id: str | None = None


async def list_tasks(
    session: AsyncSession, where: TaskFilter, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Task]:
    """Newest first (created_at, then id, both descending), from after ``after``."""
    query = select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
    for column, value in (
        (Task.owner, where.owner),
        (Task.tier, where.tier),
        (Task.state, where.state),
        (Task.outcome, where.outcome),
        (Task.playbook, where.playbook),
        (Task.account_id, where.account_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.due_before is not None:
        query = query.where(Task.due_at < where.due_before)
    if where.overdue_at is not None:
        query = query.where(Task.state == TaskState.open.value, Task.due_at < where.overdue_at)
    if after is not None:
        created_at, task_id = after
        query = query.where(
            or_(
                Task.created_at < created_at, and_(Task.created_at == created_at, Task.id < task_id)
            )
        )
    return (await session.scalars(query)).all()


async def due_escalations(session: AsyncSession, now: datetime, limit: int) -> Sequence[Task]:
    """Open tasks past their escalation time and not escalated yet, locked; rows
    another replica holds are skipped."""
    query = (
        select(Task)
        .where(
            Task.state == TaskState.open.value,
            Task.escalated_at.is_(None),
            Task.escalate_at <= now,
        )
        .order_by(Task.escalate_at, Task.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()
