"""The report as a chart (PNG, or SVG by the file's suffix): one column per model."""

from __future__ import annotations

from pathlib import Path

from services.backtest.report import Report

TARGETS = {"flagged 30d before": 0.9, "retained ever high": 0.1, "health AUC": 0.9}


def draw(reports: list[Report], path: Path) -> None:
    import matplotlib  # an optional dependency (vitals[backtest]): imported when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (shares, leads) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / max(1, len(reports))
    names = list(TARGETS)
    for n, report in enumerate(reports):
        values = _headline(report)
        positions = [i + n * width for i in range(len(names))]
        bars = shares.bar(positions, [values[k] or 0 for k in names], width, label=report["model"])
        shares.bar_label(bars, fmt="%.2f", fontsize=8)
        early = report.get("churned", {}).get("all")
        histogram = early["lead_histogram"] if early else {}
        lead_positions = [i + n * width for i in range(len(histogram))]
        leads.bar(lead_positions, list(histogram.values()), width, label=report["model"])
        leads.set_xticks([i + width * (len(reports) - 1) / 2 for i in range(len(histogram))])
        leads.set_xticklabels(list(histogram), fontsize=8)
    shares.set_xticks([i + width * (len(reports) - 1) / 2 for i in range(len(names))])
    shares.set_xticklabels([f"{k}\n(target {v:g})" for k, v in TARGETS.items()], fontsize=8)
    shares.set_ylim(0, 1.1)
    shares.set_title("Early warning and false alarms")
    shares.legend()
    leads.set_title("Days from first high risk to cancelling (churned accounts)")
    leads.set_xlabel("lead time, days")
    leads.set_ylabel("accounts")
    leads.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _headline(report: Report) -> dict[str, float | None]:
    churned = report.get("churned", {})
    declined = churned.get("decline") or churned.get("all")
    retained = report.get("retained")
    return {
        "flagged 30d before": declined["flagged_high_30d_before"] if declined else None,
        "retained ever high": retained["ever_high_after_first_30_days"] if retained else None,
        "health AUC": declined["health_auc_30d_before"] if declined else None,
    }
