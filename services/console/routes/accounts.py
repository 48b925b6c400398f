"""Accounts: the filtered list, an account's page (its story over a range, its
overrides and alerts), and a CSM's overrides of its band or tier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import views
from services.console.client import BadInput, Params, ScoringApi
from services.console.context import SIGNED_IN, Context, Person
from services.console.export import csv_response
from services.scoring.schemas import AccountPage, HistoryEntry

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)
HISTORY_PAGES = 5  # of 1,000 material changes: a year of a busy account
CSV_PAGE = "500"  # accounts per API call of the CSV export (the API's most)


@router.get("/accounts")
async def accounts(request: Request, console: Context, person: Person) -> HTMLResponse:
    query = views.list_query(request.query_params)
    today = datetime.now(UTC).date()
    params: Params = {**_api_query(query, today), "limit": "50", "count": "true"}
    if cursor := request.query_params.get("cursor"):
        params["cursor"] = cursor
    page = await console.scoring.accounts(person.key, params)
    return console.render(
        request,
        "accounts.html",
        page=page,
        query=query,
        today=today,
        renews=views.renews,
        renews_within=views.RENEWS_WITHIN,
    )


@router.get("/accounts.csv")
async def accounts_csv(request: Request, console: Context, person: Person) -> Response:
    """The accounts list's filters, every account they find, as CSV: streamed a keyset
    page at a time from the API, so a million rows never sit in memory. The first page
    is read before the answer starts, so a refused filter or key gets its page."""
    query = views.list_query(request.query_params)
    params: Params = {**_api_query(query, datetime.now(UTC).date()), "limit": CSV_PAGE}
    first = await console.scoring.accounts(person.key, params)

    def rows(page: AccountPage) -> Iterator[list[object]]:
        return (views.csv_row(account) for account in page.accounts)

    async def next_page(cursor: str) -> AccountPage:
        return await console.scoring.accounts(person.key, {**params, "cursor": cursor})

    return csv_response("accounts.csv", views.CSV_COLUMNS, first, rows, next_page)


def _api_query(query: dict[str, str], today: date) -> Params:
    try:
        return dict(views.api_query(query, today))
    except ValueError as exc:
        raise BadInput(str(exc)) from None


# The actions on an account first: its id may hold "/", so the page's route, which
# takes the rest of the path, must come after them.
@router.post("/accounts/{account_id:path}/overrides")
async def set_override(
    request: Request,
    console: Context,
    person: Person,
    account_id: str,
    field: Annotated[str, Form(max_length=10)],
    value: Annotated[str, Form(max_length=20)],
    reason: Annotated[str, Form(max_length=2000)],
    days: Annotated[int, Form(ge=1, le=90)],
) -> Response:
    expires = datetime.now(UTC) + timedelta(days=days)
    call = partial(
        console.scoring.set_override,
        person.key,
        account_id,
        field=field,
        value=value,
        reason=reason,
        expires_at=expires,
        created_by=person.name,
    )
    await console.acting(person, "set overrides", call)
    return RedirectResponse(f"/accounts/{quote(account_id, safe='')}", status_code=303)


@router.post("/accounts/{account_id:path}/overrides/lift")
async def lift_override(
    console: Context,
    person: Person,
    account_id: str,
    field: Annotated[str, Form(max_length=10)],
) -> Response:
    call = partial(
        console.scoring.lift_overrides, person.key, account_id, by=person.name, field=field
    )
    await console.acting(person, "lift overrides", call)
    return RedirectResponse(f"/accounts/{quote(account_id, safe='')}", status_code=303)


@router.get("/accounts/{account_id:path}")
async def account(
    request: Request, console: Context, person: Person, account_id: str
) -> HTMLResponse:
    chosen = request.query_params.get("range", views.DEFAULT_RANGE)
    days = views.RANGES.get(chosen)
    if days is None:
        raise BadInput(f"range must be one of {', '.join(views.RANGES)}")
    scoring = console.scoring
    found = await scoring.account(person.key, account_id)
    now = datetime.now(UTC)
    entries = await _history(scoring, person.key, account_id, now - timedelta(days=days))
    cards = await console.scorecards.get(partial(scoring.scorecards, person.key))
    card = next((c for c in cards if c.ref == found.scorecard), None)
    labels = views.group_labels(card.definition if card else None)
    overrides = await scoring.overrides(person.key, account_id)
    alerts = await console.alerts.alerts(person.key, {"account_id": account_id})
    return console.render(
        request,
        "account.html",
        account=found,
        series=views.chart_series(entries, now),
        components=views.component_series(entries, now),
        standing=views.standing_series(entries, now),
        zones=views.band_zones(card.definition if card else None),
        changes=views.changes(entries),
        story=views.story(entries, now, labels),
        said=views.drivers_in_words,
        today=now.date(),
        renews=views.renews,
        overrides=overrides,
        alerts=alerts.alerts,
        range=chosen,
        ranges=views.RANGES,
        snoozes=views.SNOOZES,
        override_days=views.OVERRIDE_DAYS,
    )


async def _history(
    scoring: ScoringApi, key: str, account_id: str, since: datetime
) -> list[HistoryEntry]:
    """Up to 5,000 material changes since ``since``: a year of a busy account."""
    entries: list[HistoryEntry] = []
    params: Params = {"since": since.isoformat(), "limit": "1000"}
    for _ in range(HISTORY_PAGES):
        page = await scoring.history(key, account_id, params)
        entries += page.entries
        if not page.next_cursor:
            break
        params["cursor"] = page.next_cursor
    return entries
