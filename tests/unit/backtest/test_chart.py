"""The backtest chart reads the same figures as the report's table, says whom each
group counts, draws the targets and carries the glossary."""

from __future__ import annotations

import re
from pathlib import Path

from services.backtest.chart import BARS, TARGETS, draw, value_at
from services.backtest.report import GLOSSARY, EarlyWarning, Report
from services.backtest.rows import report_rows


def _warning(accounts: int, flagged: float, auc: float) -> EarlyWarning:
    return {
        "accounts": accounts,
        "flagged_high_30d_before": flagged,
        "flagged_high_14d_before": flagged,
        "never_flagged_high": 0.1,
        "lead_days": {"p25": 10.0, "p50": 20.0, "p75": 30.0},
        "lead_histogram": {"0-6": 1, "30-59": accounts - 1, "never": 0},
        "health_auc_30d_before": auc,
    }


REPORT: Report = {
    "model": "default@2",
    "days": 180,
    "accounts": 1000,
    "churned": {
        "all": _warning(220, 0.51, 0.85),
        "decline": _warning(160, 0.71, 0.96),
        "abrupt": _warning(60, 0.05, 0.52),
    },
    "retained": {"accounts": 780, "ever_high_after_first_30_days": 0.09, "ever_high": 0.2},
    "tiers": {"match_revenue_truth": {"share": 0.98}},
}


def test_the_chart_s_figures_are_the_table_s() -> None:
    rows = report_rows([REPORT])
    table = {label: cells for label, cells in reversed(rows)}  # a label's first row
    figures = {bar.label.replace("\n", " "): value_at(REPORT, bar.path) for bar in BARS}

    assert figures["flagged high >= 30d before all churned"] == 0.51
    assert figures["health AUC 30d before all churned"] == 0.85
    assert figures["flagged high >= 30d before declines"] == 0.71
    assert table["  flagged high >= 30 days before"] == ["0.51"]  # the all-churned row first
    assert table["tier matches revenue truth"] == ["0.98"]
    assert TARGETS == {
        "flagged high >= 30d before declines": 0.9,
        "health AUC 30d before declines": 0.9,
        "retained ever high (false alarms)": 0.1,
        "tier matches revenue truth": 0.95,
    }


def test_the_svg_labels_its_groups_draws_the_targets_and_carries_the_glossary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.svg"
    draw([REPORT, {**REPORT, "model": "default@1"}], path)
    svg = path.read_text()

    assert "all churned (220)" in svg and "declines (160)" in svg
    assert "(false alarms) (780)" in svg
    assert len(re.findall(r"target (&gt;|&lt;)= ", svg)) == 4
    assert "target &gt;= 0.9" in svg and "target &lt;= 0.1" in svg
    assert "stroke-dasharray" in svg  # the target lines are dashed
    for term in GLOSSARY:
        assert term in svg, term
    assert "0.51" in svg and "0.85" in svg and "0.71" in svg
