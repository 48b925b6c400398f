"""The compiled build (setup.py with VITALS_COMPILE=1), as the image installs it: the
modules pyproject.toml's ``[tool.vitals] compiled`` lists are C extensions made by
mypyc; the unit tests, and the integration tests of the services that call them, pass
against them; and a backtest writes byte for byte the daily file the interpreted
modules write.

The wheel is built in a copy of the checkout, and its extension modules are laid over
the copy's sources, where the tests run: nothing compiled lands in the checkout, where
it would shadow later edits. Building needs a C compiler and Python's headers and takes
about a minute; a missing compiler fails the tests, as missing Kafka or PostgreSQL
fails the integration tests.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compiled_modules import COMPILED, MODULES, SHOW_FILES, extension_files
from tests.deploy.promql import ROOT
from tests.support.infra import missing_tool, require_kafka, require_postgres

BUILD_TIMEOUT_S = 600
# The integration suites take minutes on an idle machine and several times that beside
# a CPU-bound job: the bound catches a hang, not a slow machine.
SUITE_TIMEOUT_S = 1500
SMALL_PORTFOLIO = ("--accounts", "60", "--days", "120", "--seed", "5")
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps")


def _checkout_files() -> list[str]:
    """The checkout's files as they are now: tracked, and new ones git does not ignore."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _copy_checkout(target: Path) -> Path:
    for name in _checkout_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def _run(command: list[str], cwd: Path, timeout: float, **env: str) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        # A pytest run inside this one must not take this worker's settings for its own.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout with the compiled wheel's extension modules beside its
    sources; built once per run, whichever test worker gets there first."""
    if not any(shutil.which(compiler) for compiler in ("cc", "gcc")):
        missing_tool("the compiled build needs a C compiler: apt-get install gcc")
    shared = tmp_path_factory.getbasetemp().parent  # the same for every xdist worker
    work = shared / "compiled"
    with (shared / "compiled.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (work / "built").exists():
            shutil.rmtree(work, ignore_errors=True)
            _build(work)
            (work / "built").touch()
    return work / "tree"


def _build(work: Path) -> None:
    """The wheel built in a copy of the checkout, its extension modules then laid over
    the copy's sources; setup.py's own build directory goes."""
    tree = _copy_checkout(work / "tree")
    wheels = work / "wheels"
    _run(
        [*PIP_WHEEL, "--wheel-dir", str(wheels), "."],
        cwd=tree,
        timeout=BUILD_TIMEOUT_S,
        VITALS_COMPILE="1",
    )
    shutil.rmtree(tree / "build")
    (wheel,) = wheels.glob("vitals-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tree, [name for name in archive.namelist() if name.endswith(".so")])


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_the_listed_modules_are_compiled(compiled_tree: Path) -> None:
    loaded = _run([sys.executable, "-c", SHOW_FILES, *MODULES], cwd=compiled_tree, timeout=60)
    assert loaded.split() == extension_files(compiled_tree)
    # The checkout itself, the other side of the comparisons below, runs them interpreted.
    loaded = _run([sys.executable, "-c", SHOW_FILES, *MODULES], cwd=ROOT, timeout=60)
    assert loaded.split() == [str(ROOT / path) for path in COMPILED]


# The unit tests, and the integration tests of the services whose pure core is compiled:
# the consumer, the sweep and the repositories hand it what they read from Kafka and
# PostgreSQL, where a compiled module checks the types a plain one would let through.
NESTED_PYTEST = ("-q", "-p", "no:cacheprovider", "--numprocesses", "2", "-x")
COMPILED_SUITES = {
    "unit": ["tests/unit"],
    "integration": [
        "tests/integration/scoring",
        "tests/integration/alerts",
        "tests/integration/ingest",
        "tests/integration/test_backtest_kafka.py",
    ],
}


@pytest.mark.timeout(BUILD_TIMEOUT_S + SUITE_TIMEOUT_S)
@pytest.mark.parametrize("suite", COMPILED_SUITES)
def test_the_tests_pass_against_the_compiled_modules(compiled_tree: Path, suite: str) -> None:
    if suite == "integration":
        require_kafka()
        require_postgres()
    # The first entry of sys.path under `python -m` is the working directory, the tree;
    # PYTHONPATH gives the processes the tests start the same modules.
    output = _run(
        [sys.executable, "-m", "pytest", *COMPILED_SUITES[suite], *NESTED_PYTEST],
        cwd=compiled_tree,
        timeout=SUITE_TIMEOUT_S,
        PYTHONPATH=str(compiled_tree),
    )
    assert " passed" in output and " failed" not in output and " skipped" not in output


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_a_backtest_writes_the_same_daily_file_and_report_compiled(
    compiled_tree: Path, tmp_path: Path
) -> None:
    portfolio = tmp_path / "portfolio"
    _run(
        [sys.executable, "-m", "bench.portfolio", "--out", str(portfolio), *SMALL_PORTFOLIO],
        cwd=ROOT,
        timeout=120,
    )
    backtest = "import sys\nfrom services.cli import app\nsys.argv[0] = 'vitals'\napp()"
    inputs = [
        *("--segment", str(portfolio / "segment.jsonl")),
        *("--stripe", str(portfolio / "stripe.jsonl")),
        *("--outcomes", str(portfolio / "outcomes.csv")),
    ]
    daily: dict[str, bytes] = {}
    reports: dict[str, Any] = {}
    for name, tree in (("interpreted", ROOT), ("compiled", compiled_tree)):
        out, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        outputs = ["--daily", str(out), "--report", str(report)]
        _run(
            [sys.executable, "-c", backtest, "backtest", *inputs, *outputs],
            cwd=tree,
            timeout=120,
            PYTHONPATH=str(tree),
        )
        daily[name] = out.read_bytes()
        reports[name] = json.loads(report.read_text())["models"]  # without paths and times
    assert daily["interpreted"].count(b"\n") > 1000
    assert daily["compiled"] == daily["interpreted"]
    assert reports["interpreted"][0]["alerts"]["notices"] > 0
    assert reports["compiled"] == reports["interpreted"]
