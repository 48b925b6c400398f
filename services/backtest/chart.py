"""The report as a chart (PNG, or SVG by the file's suffix): one colour per model.

The left panel reads the same figures as the report's table, each group labelled by
whom it counts (all churned accounts, the declines among them, the retained ones),
with the targets the docs hold the model to drawn as dashed lines; the right panel
is the lead time of all churned accounts. A glossary of the terms runs underneath."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from services.backtest.report import GLOSSARY, Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Bar:
    """One group of bars: its label, where in a report it reads, and its target."""

    label: str
    path: tuple[str, ...]
    target: float | None = None
    better: str = ">="

    @property
    def counted(self) -> tuple[str, ...] | None:
        """Where the report says how many accounts the group counts."""
        return (*self.path[:-1], "accounts") if self.path[0] in ("churned", "retained") else None


BARS = (
    Bar("flagged high\n>= 30d before\nall churned", ("churned", "all", "flagged_high_30d_before")),
    Bar(
        "flagged high\n>= 30d before\ndeclines",
        ("churned", "decline", "flagged_high_30d_before"),
        0.9,
    ),
    Bar("health AUC\n30d before\nall churned", ("churned", "all", "health_auc_30d_before")),
    Bar("health AUC\n30d before\ndeclines", ("churned", "decline", "health_auc_30d_before"), 0.9),
    Bar(
        "retained\never high\n(false alarms)",
        ("retained", "ever_high_after_first_30_days"),
        0.1,
        "<=",
    ),
    Bar("tier matches\nrevenue truth", ("tiers", "match_revenue_truth", "share"), 0.95),
)
TARGETS = {bar.label.replace("\n", " "): bar.target for bar in BARS if bar.target is not None}


def value_at(report: Report, path: tuple[str, ...]) -> float | None:
    """The figure at ``path`` in ``report``; None where the report has none."""
    value: object = report
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def glossary_text() -> str:
    return "\n".join(f"{term}: {meaning}" for term, meaning in GLOSSARY.items())


def draw(reports: list[Report], path: Path) -> None:
    import matplotlib  # an optional dependency (vitals[backtest]): imported when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # SVG keeps its words as text (searchable, testable), not as outlines.
    with plt.rc_context({"svg.fonttype": "none"}):
        figure = plt.figure(figsize=(14, 7.6))
        _draw(figure, reports)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        plt.close(figure)


def _draw(figure: Figure, reports: list[Report]) -> None:
    grid = figure.add_gridspec(2, 2, height_ratios=(5, 1.1), width_ratios=(1.35, 1))
    shares, leads = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    width = 0.8 / max(1, len(reports))
    middle = width * (len(reports) - 1) / 2
    for n, report in enumerate(reports):
        values = [value_at(report, bar.path) for bar in BARS]
        positions = [i + n * width for i in range(len(BARS))]
        bars = shares.bar(positions, [v or 0 for v in values], width, label=report["model"])
        shares.bar_label(bars, labels=[_label(v) for v in values], fontsize=8)
        early = report.get("churned", {}).get("all")
        histogram = early["lead_histogram"] if early else {}
        lead_positions = [i + n * width for i in range(len(histogram))]
        leads.bar(lead_positions, list(histogram.values()), width, label=report["model"])
        leads.set_xticks([i + middle for i in range(len(histogram))])
        leads.set_xticklabels(list(histogram), fontsize=8)
    for i, bar in enumerate(BARS):
        if bar.target is None:
            continue
        left, right = i - width / 2 - 0.04, i + 2 * middle + width / 2 + 0.04
        shares.hlines(bar.target, left, right, colors="#333333", linestyles="--", linewidth=1.2)
        shares.annotate(
            f"target {bar.better} {bar.target:g}",
            (left, bar.target),
            textcoords="offset points",
            xytext=(0, -3),
            ha="left",
            va="top",
            fontsize=7,
            color="#333333",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
        )
    shares.set_xticks([i + middle for i in range(len(BARS))])
    shares.set_xticklabels([_tick(bar, reports) for bar in BARS], fontsize=7.5)
    shares.set_ylim(0, 1.15)
    shares.set_title("Early warning, separation, false alarms and tiers (dashed: target)")
    shares.legend(loc="upper left", fontsize=8)
    leads.set_title("Days from first high risk to cancelling (all churned accounts)")
    leads.set_xlabel("lead time, days")
    leads.set_ylabel("accounts")
    leads.legend(fontsize=8)
    notes = figure.add_subplot(grid[1, :])
    notes.axis("off")
    notes.text(0, 1, glossary_text(), va="top", ha="left", fontsize=8, wrap=True)
    figure.tight_layout()


def _label(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _tick(bar: Bar, reports: list[Report]) -> str:
    """The group's label with how many accounts it counts (the first report's)."""
    counted = bar.counted
    count = value_at(reports[0], counted) if counted and reports else None
    if count is None:
        return bar.label
    return f"{bar.label} ({count:.0f})"
