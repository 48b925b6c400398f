"""The backtest's report and chart, as ``vitals backtest`` wrote them, beside the
scorecards scoring uses, and the report's terms in words (the chart's glossary)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.backtest.report import GLOSSARY
from services.console.backtest import read_report
from services.console.context import SIGNED_IN, Context, Person

router = APIRouter(dependencies=SIGNED_IN, default_response_class=HTMLResponse)


@router.get("/backtest")
async def backtest(request: Request, console: Context, person: Person) -> HTMLResponse:
    settings = console.settings
    report = await run_in_threadpool(read_report, settings.console_backtest_report)
    # Not from the cache: this page calls nothing else that checks the person's key.
    cards = await console.scoring.scorecards(person.key)
    chart = settings.console_backtest_chart
    return console.render(
        request,
        "backtest.html",
        report=report,
        in_use={c.ref for c in cards if c.default},
        chart=chart is not None and await run_in_threadpool(chart.is_file),
        glossary=GLOSSARY,
    )


@router.get("/backtest/chart.png")
async def backtest_chart(console: Context) -> Response:
    chart = console.settings.console_backtest_chart
    if chart is None or not await run_in_threadpool(chart.is_file):
        raise StarletteHTTPException(404, "no backtest chart")
    return FileResponse(chart, media_type="image/png")
