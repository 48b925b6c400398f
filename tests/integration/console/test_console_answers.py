"""An API answer that is not the API's model, on a real uvicorn server: the person gets
a page saying which service and why, the log a line saying where the answer differs."""

from __future__ import annotations

import logging

import pytest

from tests.integration.console.conftest import BROKEN, MISSHAPEN, RunningConsole


async def test_answers_that_are_not_the_api_s_model_get_a_clear_page_and_a_log_line(
    console: RunningConsole, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with console.signed_in() as client:
        misshapen = await client.get(f"/accounts/{MISSHAPEN}")
        broken = await client.get(f"/accounts/{BROKEN}")

    for shown in (misshapen, broken):
        assert shown.status_code == 500
        assert "The scoring service answered in a shape this console cannot read" in shown.text
        assert "Traceback" not in shown.text
    logged = [r.getMessage() for r in caplog.records if r.name == "services.console.client"]
    assert len(logged) == 2, logged
    assert logged[0].startswith(
        f"the scoring service's answer to GET /v1/accounts/{MISSHAPEN} is not its AccountRead: "
    )
    assert "health_score: Input should be a valid integer" in logged[0]
    assert "band: Field required" in logged[0] and "fine" not in logged[0]
    assert f"GET /v1/accounts/{BROKEN} is not its AccountRead: (the whole answer)" in logged[1]
    assert not [r for r in caplog.records if r.name == "services.console.failures"]
