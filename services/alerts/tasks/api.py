"""The tasks API (``/v1/tasks``) and the playbooks in force (``/v1/playbooks``), and
the escalation job, which lives as long as the app (the router's lifespan).

``install`` is the one call ``app.py`` makes: it reads and validates the playbooks
file (a bad file stops the service with an error naming the field), adds the
routes and starts the escalation job with the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import repository as alerts_repository
from services.alerts.api import ACT, ERRORS, ApiError, Runtime, RuntimeDep, require_admin
from services.alerts.documents import JsonObject
from services.alerts.models import Task
from services.alerts.playbooks.loader import PLAYBOOKS_KEY, PlaybookCache
from services.alerts.playbooks.model import Manual, load_playbooks, parse_playbooks
from services.alerts.settings import AlertsSettings
from services.alerts.tasks import repository
from services.alerts.tasks.escalation import Escalator
from services.alerts.tasks.schemas import (
    PlaybookRun,
    PlaybooksRead,
    TaskChange,
    TaskDetail,
    TaskList,
    TaskPatch,
    TaskRead,
)
from services.alerts.tasks.service import (
    Action,
    Complete,
    Outcome,
    Reassign,
    Skip,
    Snooze,
    Subject,
    TaskConflict,
    TaskPolicy,
    TaskState,
    changes_for,
    history_changes,
    plan_manual,
)
from shared.auth import ApiKey, Scope, authenticate
from shared.background import running
from shared.cursor import decode_time_cursor, encode_cursor
from shared.errors import times_out_of_range
from shared.http import DbSession, GatedRoute, Problem, problem_response
from shared.scores import Tier


@dataclass(frozen=True)
class Tasks:
    """What the routes need beside the alerts runtime."""

    playbooks: PlaybookCache
    policy: TaskPolicy


def _tasks(request: Request) -> Tasks:
    tasks: Tasks = request.app.state.tasks
    return tasks


TasksDep = Annotated[Tasks, Depends(_tasks)]


@asynccontextmanager
async def _escalating(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    escalator = Escalator(runtime.settings, runtime.setup_cache, app.state.sessions, runtime.clock)
    async with running(escalator.run(), "alerts-task-escalation", app.state.readiness):
        yield


router = APIRouter(
    tags=["tasks"],
    dependencies=[Depends(authenticate(Scope.read))],
    responses=ERRORS,
    route_class=GatedRoute,
    lifespan=_escalating,
)
admin_router = APIRouter(
    tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS, route_class=GatedRoute
)


def install(app: FastAPI, settings: AlertsSettings) -> None:
    """Validate the playbooks file, add the routes, run escalation with the app."""
    app.state.tasks = Tasks(
        PlaybookCache(load_playbooks(settings.alerts_playbooks_file)),
        TaskPolicy.from_settings(settings),
    )
    app.include_router(router)
    app.include_router(admin_router)


# --- tasks -------------------------------------------------------------------------------


@router.get(
    "/v1/tasks",
    response_model=TaskList,
    summary="List tasks, newest first",
    responses={400: {"model": Problem, "description": "A bad cursor"}},
)
async def list_tasks(
    session: DbSession,
    runtime: RuntimeDep,
    owner: Annotated[str | None, Query(max_length=320, description="owner or queue:<name>")] = None,
    tier: Tier | None = None,
    state: TaskState | None = None,
    due_before: datetime | None = None,
    outcome: Outcome | None = None,
    playbook: Annotated[str | None, Query(max_length=100)] = None,
    overdue: Annotated[bool | None, Query(description="true: open tasks past due")] = None,
    account_id: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskList | JSONResponse:
    try:
        after = decode_time_cursor(cursor) if cursor else None
    except ValueError as exc:
        return problem_response(400, "bad_cursor", str(exc))
    if due_before is not None and due_before.tzinfo is None:
        return problem_response(422, "invalid_request", "due_before needs a time zone")
    now = runtime.clock()
    where = repository.TaskFilter(
        owner=owner,
        tier=tier.value if tier else None,
        state=state.value if state else None,
        due_before=due_before,
        outcome=outcome.value if outcome else None,
        playbook=playbook,
        overdue_at=now if overdue else None,
        account_id=account_id,
    )
    rows = await repository.list_tasks(session, where, after, limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return TaskList(tasks=[_read(row, now) for row in page], next_cursor=next_cursor)


@router.get("/v1/tasks/{task_id}", response_model=TaskDetail, summary="One task, with its history")
async def get_task(task_id: str, session: DbSession, runtime: RuntimeDep) -> TaskDetail:
    task = await _task(session, task_id)
    return await _detail(session, task, runtime.clock())


@router.patch(
    "/v1/tasks/{task_id}",
    response_model=TaskDetail,
    dependencies=ACT,
    summary="Complete, skip, reassign or snooze a task",
)
async def patch_task(
    task_id: str,
    body: TaskPatch,
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    tasks: TasksDep,
) -> TaskDetail | JSONResponse:
    now = runtime.clock()
    action = _action(body, now)
    if isinstance(action, Snooze) and (problems := times_out_of_range("body", until=action.until)):
        return problem_response(422, "invalid_request", "the snooze is out of range", problems)
    actor = body.by or _key_name(request)
    async with session.begin():
        task = await _task(session, task_id, lock=True)
        current = {column: getattr(task, column) for column in _COLUMNS}
        grace = tasks.policy.levels.grace.get(task.tier or "", timedelta(0))
        try:
            name, changes = changes_for(current, action, now, grace)
        except TaskConflict as exc:
            raise ApiError(409, "task_conflict", str(exc)) from None
        diff = history_changes(current, changes)
        for column, value in changes.items():
            setattr(task, column, value)
        task.updated_at = now
        await repository.add_history(
            session, [repository.history_row(task.id, now, actor, name, diff)]
        )
    return await _detail(session, task, now)


# --- playbooks ---------------------------------------------------------------------------


@router.post(
    "/v1/playbooks/{playbook_id}/runs",
    response_model=TaskList,
    dependencies=ACT,
    summary="Start a playbook by hand for an account",
)
async def run_playbook(
    playbook_id: str, body: PlaybookRun, session: DbSession, runtime: RuntimeDep, tasks: TasksDep
) -> TaskList:
    now = runtime.clock()
    async with session.begin():
        playbooks, _ = await tasks.playbooks.current(session)
        playbook = playbooks.get(playbook_id)
        if playbook is None or not isinstance(playbook.trigger, Manual):
            raise ApiError(404, "not_found", f"no playbook {playbook_id!r} started by hand")
        subject = Subject(
            account_id=body.account_id,
            tier=body.tier,
            stage=None,
            segment=body.segment,
            risk=None,
            owner=body.owner,
            sequence=1,
            context={"account": {"owner_csm_email": body.owner, "segment": body.segment}},
        )
        rows = plan_manual(playbooks, playbook, subject, body.key, now, tasks.policy)
        await repository.insert_new(session, rows, now)
    ids = [row["id"] for row in rows]
    stored = [await _task(session, task_id) for task_id in ids]
    return TaskList(tasks=[_read(row, now) for row in stored], next_cursor=None)


@admin_router.get("/v1/playbooks", response_model=PlaybooksRead, summary="The playbooks in force")
async def get_playbooks(session: DbSession, tasks: TasksDep) -> PlaybooksRead:
    playbooks, source = await tasks.playbooks.current(session)
    document: JsonObject = playbooks.model_dump(mode="json")
    return PlaybooksRead(
        source="api" if source == "api" else "file", ref=playbooks.ref, document=document
    )


@admin_router.put("/v1/playbooks", response_model=PlaybooksRead, summary="Replace the playbooks")
async def put_playbooks(
    body: JsonObject, session: DbSession, runtime: RuntimeDep, tasks: TasksDep
) -> PlaybooksRead:
    playbooks = parse_playbooks(body, "playbooks")  # ConfigError: 422 naming the field
    async with session.begin():
        await alerts_repository.raise_config_revision(session)
        await alerts_repository.save_config_document(
            session, PLAYBOOKS_KEY, playbooks.model_dump(mode="json"), runtime.clock()
        )
    return PlaybooksRead(
        source="api", ref=playbooks.ref, document=playbooks.model_dump(mode="json")
    )


@admin_router.delete("/v1/playbooks", status_code=204, summary="Back to the playbooks file")
async def delete_playbooks(session: DbSession) -> Response:
    async with session.begin():
        await alerts_repository.raise_config_revision(session)
        await alerts_repository.delete_config_document(session, PLAYBOOKS_KEY)
    return Response(status_code=204)


# --- helpers -----------------------------------------------------------------------------

_COLUMNS = (
    "state",
    "outcome",
    "note",
    "owner",
    "snoozed_until",
    "escalate_at",
    "escalated_at",
    "closed_at",
)


def _action(body: TaskPatch, now: datetime) -> Action:
    if body.action == "complete":
        assert body.outcome is not None
        return Complete(body.outcome, body.note)
    if body.action == "skip":
        return Skip(body.note)
    if body.action == "reassign":
        assert body.owner is not None
        return Reassign(body.owner, body.note)
    until = body.until if body.until is not None else now + body.for_  # type: ignore[operator]
    return Snooze(until, body.note)


def _key_name(request: Request) -> str:
    key: ApiKey | None = getattr(request.state, "api_key", None)
    return key.name if key is not None else "api"


async def _task(session: AsyncSession, task_id: str, *, lock: bool = False) -> Task:
    task = await repository.get(session, task_id, lock=lock)
    if task is None:
        raise ApiError(404, "not_found", f"no task {task_id}")
    return task


def _read(task: Task, now: datetime) -> TaskRead:
    read = TaskRead.model_validate(task)
    overdue = task.state == TaskState.open and task.due_at is not None and task.due_at < now
    return read.model_copy(
        update={"overdue": overdue, "cause_resolved": task.cause_resolved_at is not None}
    )


async def _detail(session: AsyncSession, task: Task, now: datetime) -> TaskDetail:
    history = [TaskChange.model_validate(row) for row in await repository.history(session, task.id)]
    return TaskDetail(**_read(task, now).model_dump(), history=history)
