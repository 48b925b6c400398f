"""promtool for the deploy checks, found by deploy/local/promtool.sh."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.promql import ROOT


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary. Missing, the test fails under CI and is skipped elsewhere."""
    found = subprocess.run(
        [str(ROOT / "deploy" / "local" / "promtool.sh"), "path"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        message = "promtool is not installed; run: deploy/local/promtool.sh install"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found.stdout.strip()
