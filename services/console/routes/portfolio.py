"""The portfolio: its figures (everyone's, or one owner's or segment's), how they moved,
and the accounts that need attention first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console import views
from services.console.client import Params
from services.console.context import SIGNED_IN, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)


@router.get("/")
async def portfolio(request: Request, console: Context, person: Person) -> HTMLResponse:
    owner = request.query_params.get("owner", "").strip()[:320]
    segment = request.query_params.get("segment", "").strip()[:200]
    scope: Params = {k: v for k, v in (("owner", owner), ("segment", segment)) if v}
    figures = await console.scoring.portfolio(person.key, scope)
    high = await console.scoring.accounts(
        person.key,
        {"risk": "high", "stage": views.SAVABLE, "sort": "change", "limit": "100", **scope},
    )
    attention = views.attention_first(high.accounts)[:20]
    return console.render(
        request,
        "portfolio.html",
        figures=figures,
        attention=attention,
        owner=owner,
        segment=segment,
    )
