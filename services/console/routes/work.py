"""My work: the signed-in person's open tasks (overdue, due today, upcoming, snoozed;
the most valuable tier first), an account's tasks with their history, and a person's
action on a task (complete with an outcome, skip, snooze, reassign) as plain forms:
the console PATCHes the alerts API and records the person as the one who acted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, TypedDict
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.alerts.tasks.schemas import TaskChange, TaskRead
from services.console import views, work
from services.console.client import BadInput, ConsoleError, NotFound, Params, Unavailable
from services.console.context import SIGNED_IN, ConsoleContext, Context, Person
from services.console.session import Session

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)
MOST_TASKS = "500"  # of one person's open tasks on the page
MOST_NAMED = 50  # accounts whose names are read for one page
ACCOUNT_TASKS = "50"  # an account's newest tasks read for its page
RECENT_CLOSED = 10  # of them, the closed ones shown with their history


class AlreadyClosed(ConsoleError):
    status = 409


@router.get("/work")
async def my_work(request: Request, console: Context, person: Person) -> HTMLResponse:
    """The person's open tasks (``?owner=`` another person's or a queue's, such as
    ``queue:digital-cs``); ``?tier=`` one tier's."""
    query = request.query_params
    owner = (query.get("owner") or person.name).strip()[: work.MOST_OWNER]
    tier = query.get("tier") or None
    if tier is not None and tier not in work.TIERS:
        raise BadInput(f"tier must be one of {', '.join(work.TIERS)}")
    params: Params = {"owner": owner, "state": "open", "limit": MOST_TASKS}
    if tier:
        params["tier"] = tier
    found = await console.alerts.tasks(person.key, params)
    now = datetime.now(UTC)
    return console.render(
        request,
        "work.html",
        sections=work.sections(found.tasks, now),
        names=await _names(console, person, found.tasks),
        owner=owner,
        yours=owner == person.name,
        tier=tier,
        tiers=work.TIERS,
        more=found.next_cursor is not None,
        done=work.DONE.get(query.get("done", "")),
        now=now,
        back=_here(request),
        **_row_context(),
    )


@router.get("/work/accounts/{account_id:path}")
async def account_tasks(
    request: Request, console: Context, person: Person, account_id: str
) -> HTMLResponse:
    """An account's open and recently closed tasks with their history: the account
    page's section (htmx loads it there), or a page of its own without script."""
    params: Params = {"account_id": account_id, "limit": ACCOUNT_TASKS}
    found = await console.alerts.tasks(person.key, params)
    shown = work.account_order(found.tasks, RECENT_CLOSED)
    details = await asyncio.gather(*(console.alerts.task(person.key, t.id) for t in shown))
    page = "_account_tasks.html" if request.headers.get("HX-Request") else "work.html"
    return console.render(
        request,
        page,
        sections=None,
        account_id=account_id,
        account_tasks=list(details),
        now=datetime.now(UTC),
        back=f"/accounts/{quote(account_id, safe='')}",
        **_row_context(),
    )


@router.post("/work/tasks/{task_id}/{action}")
async def act(
    request: Request,
    console: Context,
    person: Person,
    task_id: str,
    action: str,
    back: Annotated[str, Form(max_length=2000)] = "/work",
    outcome: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=work.MOST_NOTE)] = "",
    duration: Annotated[str, Form(alias="for", max_length=10)] = "",
    owner: Annotated[str, Form(max_length=work.MOST_OWNER)] = "",
) -> Response:
    form = {"outcome": outcome, "note": note, "for": duration, "owner": owner}
    try:
        body = work.patch_body(action, form, person.name)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    call = partial(console.alerts.act_on_task, person.key, task_id, body)
    try:
        await console.acting(person, f"{action} tasks", call)
    except Unavailable:
        raise Unavailable(
            "The task was not changed: the alerts service did not answer. Try again in a moment."
        ) from None
    except BadInput:
        raise await _refusal(console, person, task_id) from None
    return RedirectResponse(_after(back, action), status_code=303)


async def _refusal(console: ConsoleContext, person: Session, task_id: str) -> ConsoleError:
    """Why the alerts API refused: a task someone already closed says so, by whom."""
    try:
        task = await console.alerts.task(person.key, task_id)
    except NotFound:
        return NotFound("There is no such task.")
    if task.state != "open":
        last = task.history[-1] if task.history else None
        by = f" by {last.actor}, {views.when(last.at)}" if last else ""
        return AlreadyClosed(f"Nothing changed: the task is already {work.state_words(task)}{by}.")
    return BadInput("The alerts service refused the change to this task.")


def _here(request: Request) -> str:
    """This page with its filters, without the last action's message."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "done"]
    return "/work" + (f"?{urlencode(kept)}" if kept else "")


def _after(back: str, action: str) -> str:
    """Back where the form was (a page of the console only), saying what was done."""
    target = views.safe_next(back)
    if not target.startswith("/work"):
        return target
    return f"{target}{'&' if '?' in target else '?'}done={action}"


async def _names(console: ConsoleContext, person: Session, tasks: list[TaskRead]) -> dict[str, str]:
    """The accounts' names from the scoring API, for the first ``MOST_NAMED`` accounts;
    an account it does not answer for is shown by its id."""
    ids = list(dict.fromkeys(task.account_id for task in tasks))[:MOST_NAMED]

    async def name(account_id: str) -> tuple[str, str]:
        try:
            found = await console.scoring.account(person.key, account_id)
        except (NotFound, Unavailable):
            return account_id, account_id
        return account_id, found.name or account_id

    return dict(await asyncio.gather(*(name(i) for i in ids)))


class RowContext(TypedDict):
    """What a task's row and its forms read."""

    outcomes: dict[str, str]
    snoozes: dict[str, str]
    due_words: Callable[[datetime | None, datetime], str]
    state_words: Callable[[TaskRead], str]
    change_words: Callable[[TaskChange], list[str]]


def _row_context() -> RowContext:
    return {
        "outcomes": work.OUTCOMES,
        "snoozes": work.SNOOZES,
        "due_words": work.due_words,
        "state_words": work.state_words,
        "change_words": work.change_words,
    }
