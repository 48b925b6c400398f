"""The portfolio: first the accounts that need attention (who, why, by when), then its
figures (everyone's, or one owner's or segment's) and how they moved."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console import views
from services.console.client import Params
from services.console.context import SIGNED_IN, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)
ATTENTION_ROWS = "30"


@router.get("/")
async def portfolio(request: Request, console: Context, person: Person) -> HTMLResponse:
    """Without an ``owner`` in the query, the signed-in person's own book when they own
    accounts (matched on the accounts' owner, as they named themselves); ``?owner=``
    (empty) shows everyone's."""
    given = request.query_params
    owner = given.get("owner", "").strip()[:320]
    segment = given.get("segment", "").strip()[:200]
    figures = None
    yours = False
    if "owner" not in given:
        theirs = await console.scoring.portfolio(
            person.key, {"owner": person.name[:320], **({"segment": segment} if segment else {})}
        )
        if theirs.accounts:
            owner, figures, yours = person.name[:320], theirs, True
    scope: Params = {k: v for k, v in (("owner", owner), ("segment", segment)) if v}
    if figures is None:
        figures = await console.scoring.portfolio(person.key, scope)
    attention = await console.scoring.attention(person.key, {**scope, "limit": ATTENTION_ROWS})
    return console.render(
        request,
        "portfolio.html",
        figures=figures,
        attention=attention.accounts,
        owner=owner,
        segment=segment,
        yours=yours,
        today=datetime.now(UTC).date(),
        renews=views.renews,
    )
