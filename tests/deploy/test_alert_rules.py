"""The Prometheus rules in deploy/prometheus: valid, unit-tested with promtool, on
metrics the services define, and each alert with its entry in docs/alert-runbook.md."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.promql import ROOT, defined_series, metric_names

RULES = ROOT / "deploy" / "prometheus" / "rules" / "vitals.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "vitals.rules.test.yml"
RUNBOOK = ROOT / "docs" / "alert-runbook.md"
RUNBOOK_URL = "https://vitals.example.com/docs/alert-runbook.md#"
SEVERITIES = {"critical", "warning"}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _anchor(heading: str) -> str:
    """The anchor Markdown renderers (GitHub's among them) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_accepts_the_rules(promtool: str) -> None:
    checked = _run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    tested = _run(promtool, "test", "rules", str(RULE_TESTS))

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_fires_in_a_unit_test_and_stays_silent_in_another() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]

    for alert in _alerts():
        name = alert["alert"]
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"no unit test where {name} fires"
        assert [] in expected, f"no unit test where {name} stays silent"


def test_every_alert_has_a_severity_a_summary_a_description_and_its_runbook_entry() -> None:
    anchors = {
        _anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }

    for alert in _alerts():
        name = alert["alert"]
        annotations = alert["annotations"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == RUNBOOK_URL + name.lower()
        assert name.lower() in anchors, f"docs/alert-runbook.md has no '## {name}'"
    assert anchors == {alert["alert"].lower() for alert in _alerts()}, "runbook entries of no alert"


def test_the_rules_query_only_metrics_the_services_define() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    defined = defined_series() | recorded

    for rule in _rules():
        used = metric_names(rule["expr"])
        if re.fullmatch(r"vector\(\d+\)", rule["expr"]):
            continue  # a constant, such as a threshold
        assert used, f"no metric found in {rule['expr']!r}"
        assert used <= defined, f"{sorted(used - defined)} not defined: {rule['expr']}"


def test_a_sweep_is_overdue_at_twice_the_interval_scoring_reports() -> None:
    (sweep,) = [alert for alert in _alerts() if alert["alert"] == "VitalsSweepOverdue"]

    assert "> on (job, instance) 2 * vitals_scoring_sweep_interval_seconds" in sweep["expr"]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("VitalsServiceDown", "vitalsservicedown"),
        (" Sweep overdue (scoring) ", "sweep-overdue-scoring"),
    ],
)
def test_anchor_is_the_renderers(heading: str, anchor: str) -> None:
    assert _anchor(heading) == anchor
