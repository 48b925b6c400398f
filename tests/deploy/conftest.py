"""promtool for the deploy checks, found by deploy/local/promtool.sh."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.promql import ROOT
from tests.support.infra import missing_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary."""
    found = subprocess.run(
        [str(ROOT / "deploy" / "local" / "promtool.sh"), "path"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        missing_tool("promtool is not installed; run: deploy/local/promtool.sh install")
    return found.stdout.strip()
