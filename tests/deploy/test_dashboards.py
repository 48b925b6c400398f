"""The Grafana dashboards in deploy/grafana/dashboards are the generator's output, and
query only metrics the services define."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from services.scoring.settings import ScoringSettings
from tests.deploy.promql import ROOT, defined_series, metric_names

GENERATOR = ROOT / "deploy" / "grafana" / "dashboards.py"
COMMITTED = ROOT / "deploy" / "grafana" / "dashboards"
REGENERATE = ".venv/bin/python deploy/grafana/dashboards.py --out deploy/grafana/dashboards"
SERVICE_JOBS = {
    "vitals-ingest.json": "vitals-ingest",
    "vitals-scoring.json": "vitals-scoring",
    "vitals-alerts.json": "vitals-alerts",
    "vitals-console.json": "vitals-console",
}
SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^{}]*\}")
# Grafana's variable query label_values(SELECTOR, LABEL): only SELECTOR is PromQL.
LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\)")


def _load_generator() -> ModuleType:
    """deploy/grafana/dashboards.py, loaded from its path: the folder it writes,
    deploy/grafana/dashboards/, would shadow it as a namespace package for type checkers."""
    spec = importlib.util.spec_from_file_location("vitals_grafana_dashboards", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


dashboards = _load_generator()


def _committed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((COMMITTED / name).read_text(encoding="utf-8"))
    return loaded


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _targets(board: dict[str, Any]) -> Iterator[str]:
    """The PromQL expression of every panel query of ``board``."""
    for panel in _panels(board):
        for target in panel.get("targets", []):
            yield target["expr"]


def _queries(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of ``board``: panel queries and variables' selectors."""
    yield from _targets(board)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            selector = LABEL_VALUES.fullmatch(variable["query"])
            assert selector is not None, variable["query"]
            yield selector[1]


def test_the_committed_dashboards_are_the_generators_output() -> None:
    committed = {path.name: path.read_text(encoding="utf-8") for path in COMMITTED.glob("*.json")}

    rendered = dashboards.render()

    assert sorted(committed) == sorted(rendered), f"regenerate: {REGENERATE}"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is not the generator's output: {REGENERATE}"


def test_the_generator_run_by_path_writes_the_committed_files(tmp_path: Path) -> None:
    # Another process: another hash seed, so set or dict order cannot leak into the JSON.
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )

    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert written == {path.name: path.read_bytes() for path in COMMITTED.glob("*.json")}


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_every_query_names_only_metrics_the_services_define(name: str) -> None:
    defined = defined_series()

    for expr in _queries(_committed(name)):
        used = metric_names(expr)
        assert used, f"no metric found in {expr!r}"
        assert used <= defined, f"{sorted(used - defined)} not defined by any service: {expr}"


def test_every_metric_the_services_define_is_on_a_dashboard() -> None:
    used = {
        metric
        for name in dashboards.DASHBOARDS
        for expr in _queries(_committed(name))
        for metric in metric_names(expr)
    }
    # A histogram is on a dashboard when any of its series is.
    covered = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used} | used

    missing = {
        series
        for series in defined_series()
        if series.startswith("vitals_")
        and re.sub(r"_(bucket|sum|count)$", "", series) not in covered
    }

    assert not missing, f"add to deploy/grafana/dashboards.py: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_dashboards_have_a_stable_uid_a_datasource_variable_and_units(name: str) -> None:
    board = _committed(name)
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    panels = list(_panels(board))
    graphs = [panel for panel in panels if panel["type"] != "row"]

    assert board["uid"] == Path(name).stem
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"
        assert panel["description"], f"{panel['title']} has no description"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), panel["title"]


def test_the_overview_is_scoped_by_its_job_variable() -> None:
    board = _committed("vitals-overview.json")

    assert [variable["name"] for variable in board["templating"]["list"]] == ["datasource", "job"]
    for expr in _targets(board):
        for selector in SELECTOR.findall(expr):
            assert 'job=~"$job"' in selector, expr


@pytest.mark.parametrize("name", sorted(SERVICE_JOBS))
def test_service_dashboards_query_their_own_job_and_show_the_process(name: str) -> None:
    board = _committed(name)
    job = SERVICE_JOBS[name]
    exprs = list(_targets(board))

    assert f'up{{job="{job}"}}' in _queries(board)  # the instance variable's values
    for expr in exprs:
        for selector in SELECTOR.findall(expr):
            assert f'job="{job}", instance=~"$instance"' in selector, expr
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= used


def test_the_sweep_thresholds_follow_scorings_default_interval() -> None:
    assert ScoringSettings.model_fields["scoring_sweep_interval_s"].default == (
        dashboards.SWEEP_INTERVAL_S
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.9, sum by (le, job) "
            '(rate(a_bucket{job=~"x|y"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        (
            "time() - max by (instance) (b_seconds > 0) / on (job) group_left c_total",
            {
                "b_seconds",
                "c_total",
            },
        ),
        ('label_replace(d, "consumer", "ingest-raw", "", "") or e offset 5m and 1e3', {"d", "e"}),
    ],
)
def test_metric_names_finds_the_selected_metrics_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_renamed_metric_is_not_defined() -> None:
    defined = defined_series()

    assert "vitals_consumer_lag_records" in defined
    assert "vitals_scoring_sweep_seconds_bucket" in defined
    assert "process_cpu_seconds_total" in defined
    assert "vitals_consumer_lag" not in defined
    assert "vitals_scoring_sweep_seconds" not in defined
