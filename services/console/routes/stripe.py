"""Stripe customers with no account: ingest keeps their billing events aside, unscored,
until someone tells Vitals whose customer it is (docs/ingest.md, "Customers with no
account"). The page lists them from ingest's API and says how to map one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.client import Unavailable
from services.console.context import SIGNED_IN, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)
NOT_SET_UP = (
    "This console is not set up to read ingest: set VITALS_CONSOLE_INGEST_URL to the "
    "ingest API's base URL (make run, the compose file and the chart do) and restart it."
)


@router.get("/stripe/unmapped-customers")
async def unmapped_customers(request: Request, console: Context, person: Person) -> HTMLResponse:
    page = "stripe_unmapped.html"
    if console.ingest is None:
        return console.render(request, page, status=503, customers=None, problem=NOT_SET_UP)
    try:
        found = await console.ingest.unmapped_customers(person.key)
    except Unavailable as exc:
        problem = f"Cannot list them now: {exc.message}. Reload once ingest is back."
        return console.render(request, page, status=503, customers=None, problem=problem)
    return console.render(request, page, customers=found.customers, problem=None)
