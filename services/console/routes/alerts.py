"""The alerts inbox (sorted and folded by services/console/inbox.py) and its CSV export,
and a CSM's acknowledgement or snooze of an alert: its new row for htmx, else back to
the inbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, TypedDict
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.alerts.schemas import AlertList, AlertRead
from services.console import inbox as triage
from services.console import views
from services.console.client import BadInput, Params
from services.console.context import SIGNED_IN, ConsoleContext, Context, Person
from services.console.export import csv_response

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)
CSV_PAGE = "500"  # alerts per API call of the CSV export (the API's most)


@router.get("/alerts")
async def inbox(request: Request, console: Context, person: Person) -> HTMLResponse:
    query = request.query_params
    state, owner, tier = query.get("state", "open"), query.get("owner"), query.get("tier")
    params = _filters(state, owner, tier)
    # All open ones (up to 500), to sort the most pressing first.
    params["limit"] = "200" if state == "resolved" else "500"
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


def _filters(state: str, owner: str | None, tier: str | None) -> Params:
    """The inbox's tab and filters as the alerts API's query."""
    if state not in triage.STATES:
        raise BadInput(f"state must be one of {', '.join(triage.STATES)}")
    params: Params = {"state": "resolved" if state == "resolved" else "open"}
    if state != "resolved":
        params["snoozed"] = str(state == "snoozed").lower()
    if owner:
        params["owner"] = owner
    if tier:
        if tier not in triage.TIERS:
            raise BadInput(f"tier must be one of {', '.join(triage.TIERS)}")
        params["tier"] = tier
    return params


@router.get("/alerts.csv")
async def inbox_csv(request: Request, console: Context, person: Person) -> Response:
    """The inbox's tab and filters, every alert they find, as CSV, newest first: streamed
    a keyset page at a time from the alerts API, so no export holds every row. The first
    page is read before the answer starts, so a refused filter or key gets its page."""
    query = request.query_params
    params = _filters(query.get("state", "open"), query.get("owner"), query.get("tier"))
    params["limit"] = CSV_PAGE
    first = await console.alerts.alerts(person.key, params)

    def rows(page: AlertList) -> Iterator[list[str]]:
        return (csv_row(alert) for alert in page.alerts)

    async def next_page(cursor: str) -> AlertList:
        return await console.alerts.alerts(person.key, {**params, "cursor": cursor})

    return csv_response("alerts.csv", CSV_COLUMNS, first, rows, next_page)


CSV_COLUMNS = (
    "account_id",
    "account_name",
    "tier",
    "mrr",
    "currency",
    "severity",
    "rule",
    "summary",
    "opened_at",
    "state",
    "snoozed_until",
    "acknowledged_by",
    "acknowledged_at",
    "alert_id",
)


def csv_row(alert: AlertRead) -> list[str]:
    """One alert as a row of the inbox's CSV export (``CSV_COLUMNS``): MRR as an amount
    (12345.67), times in ISO 8601 UTC, severity as the inbox's level; blank when unknown."""
    mrr = "" if alert.mrr_minor is None else f"{alert.mrr_minor / 100:.2f}"
    return [
        alert.account_id,
        alert.account_name or "",
        alert.tier or "",
        mrr,
        (alert.currency or "").upper() if mrr else "",
        triage.level(alert),
        alert.rule,
        alert.summary,
        _iso(alert.opened_at),
        alert.state,
        _iso(alert.snoozed_until),
        alert.acked_by or "",
        _iso(alert.acked_at),
        alert.id,
    ]


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


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
