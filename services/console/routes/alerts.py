"""The alerts inbox (sorted and folded by services/console/inbox.py), and a CSM's
acknowledgement or snooze of an alert: its new row for htmx, else back to the inbox."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, TypedDict
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.alerts.schemas import AlertRead
from services.console import inbox as triage
from services.console import views
from services.console.client import BadInput, Params
from services.console.context import SIGNED_IN, ConsoleContext, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)


@router.get("/alerts")
async def inbox(request: Request, console: Context, person: Person) -> HTMLResponse:
    query = request.query_params
    state = query.get("state", "open")
    if state not in triage.STATES:
        raise BadInput(f"state must be one of {', '.join(triage.STATES)}")
    params: Params = {"state": "resolved" if state == "resolved" else "open"}
    if state != "resolved":  # all open ones (up to 500), to sort the most pressing first
        params |= {"snoozed": str(state == "snoozed").lower(), "limit": "500"}
    else:
        params["limit"] = "200"
    if owner := query.get("owner"):
        params["owner"] = owner
    if tier := query.get("tier"):
        if tier not in triage.TIERS:
            raise BadInput(f"tier must be one of {', '.join(triage.TIERS)}")
        params["tier"] = tier
    found = await console.alerts.alerts(person.key, params)
    # Resolved alerts newest first, as the API lists them.
    resolved = state == "resolved"
    shown = triage.Inbox(found.alerts, []) if resolved else triage.triaged(found.alerts)
    return console.render(
        request,
        "alerts.html",
        inbox=shown,
        state=state,
        states=triage.STATES,
        owner=owner,
        tier=tier,
        tiers=triage.TIERS,
        **_row_context(True),
    )


class RowContext(TypedDict):
    snoozes: dict[str, str]
    wide: bool
    level: Callable[[AlertRead], str]


def _row_context(wide: bool) -> RowContext:
    """What an alert's row reads: ``wide`` for the inbox's columns (account, tier, MRR,
    severity), else the account page's."""
    return {"snoozes": views.SNOOZES, "wide": wide, "level": triage.level}


@router.post("/alerts/{alert_id}/ack")
async def ack(request: Request, console: Context, person: Person, alert_id: str) -> Response:
    call = partial(console.alerts.ack, person.key, alert_id, by=person.name)
    alert = await console.acting(person, "acknowledge alerts", call)
    return _answer(console, request, alert)


@router.post("/alerts/{alert_id}/snooze")
async def snooze(
    request: Request,
    console: Context,
    person: Person,
    alert_id: str,
    duration: Annotated[str, Form(alias="for", max_length=10)],
) -> Response:
    if duration not in views.SNOOZES:
        raise BadInput(f"snooze for one of {', '.join(views.SNOOZES)}")
    call = partial(console.alerts.snooze, person.key, alert_id, duration=duration)
    alert = await console.acting(person, "snooze alerts", call)
    return _answer(console, request, alert)


def _answer(console: ConsoleContext, request: Request, alert: AlertRead) -> Response:
    """The alert's new row for htmx; a page's form goes back to the inbox."""
    if request.headers.get("HX-Request"):
        wide = urlsplit(request.headers.get("HX-Current-URL", "")).path == "/alerts"
        return console.render(request, "_alert_row.html", alert=alert, **_row_context(wide))
    return RedirectResponse("/alerts", status_code=303)
