"""The alerts inbox, and a CSM's acknowledgement or snooze of an alert: its new row for
htmx, else back to the inbox."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.alerts.schemas import AlertRead
from services.console import views
from services.console.client import BadInput, Params
from services.console.context import SIGNED_IN, ConsoleContext, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)


@router.get("/alerts")
async def inbox(request: Request, console: Context, person: Person) -> HTMLResponse:
    state = request.query_params.get("state", "open")
    if state not in ("open", "resolved"):
        raise BadInput("state must be open or resolved")
    params: Params = {"state": state, "limit": "200"}
    if owner := request.query_params.get("owner"):
        params["owner"] = owner
    found = await console.alerts.alerts(person.key, params)
    alerts = sorted(
        found.alerts,
        key=lambda a: (a.acked_at is not None, views.TIER_ORDER.get(a.tier, 4)),
    )
    return console.render(
        request, "alerts.html", alerts=alerts, state=state, owner=owner, snoozes=views.SNOOZES
    )


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
        return console.render(request, "_alert_row.html", alert=alert, snoozes=views.SNOOZES)
    return RedirectResponse("/alerts", status_code=303)
