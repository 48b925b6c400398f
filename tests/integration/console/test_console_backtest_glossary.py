"""The Backtest page carries the report's glossary (``services.backtest.report.GLOSSARY``,
the chart's) as text below its chart: the console on uvicorn over the stand-in APIs of
``conftest``, reading a report and chart written for the test."""

from __future__ import annotations

import html
from pathlib import Path

import orjson

from services.backtest.report import GLOSSARY
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from tests.integration.console.conftest import Apis, RunningConsole
from tests.support.servers import serve

REPORT = {
    "input": {"lines": 10, "events": 9},
    "models": [{"model": "default@2", "accounts": 3, "churned": {}, "tiers": {}}],
}


async def test_the_glossary_is_text_below_the_chart(tmp_path: Path) -> None:
    report, chart = tmp_path / "report.json", tmp_path / "report.png"
    report.write_bytes(orjson.dumps(REPORT))
    chart.write_bytes(b"\x89PNG\r\n\x1a\n")
    apis = Apis()
    stand_in = apis.app()
    stand_in.get("/v1/scorecards")(lambda: [])
    async with serve(stand_in) as api_url:
        settings = ConsoleSettings(
            environment="test",
            console_scoring_url=api_url,
            console_alerts_url=api_url,
            console_backtest_report=report,
            console_backtest_chart=chart,
        )
        async with (
            serve(create_app(settings)) as url,
            RunningConsole(url, apis).signed_in() as client,
        ):
            page = await client.get("/backtest")

    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    below = text[text.index('data-testid="backtest-chart"') :]
    glossary = below[below.index('data-testid="backtest-glossary"') : below.index("</dl>")]
    assert GLOSSARY
    for term, meaning in GLOSSARY.items():
        assert f"<dt>{term}</dt>" in glossary
        assert f"<dd>{meaning[0].upper()}{meaning[1:]}.</dd>" in glossary
