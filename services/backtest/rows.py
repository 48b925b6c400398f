"""The report's rows as people read them: the terminal's table and the console's page.

One label and one cell per model for each row, from the report's JSON."""

from __future__ import annotations

from collections.abc import Callable

from services.backtest.report import Report

Read = Callable[[Report], object]


def report_rows(reports: list[Report]) -> list[tuple[str, list[str]]]:
    """(label, one cell per report) for each row, in the order they are read."""
    return [(label, [_cell(read(r)) for r in reports]) for label, read in _rows(reports)]


def _rows(reports: list[Report]) -> list[tuple[str, Read]]:
    kinds = sorted({k for r in reports for k in r.get("churned", {})}, key=lambda k: k != "all")
    rows: list[tuple[str, Read]] = [
        ("accounts", lambda r: r.get("accounts")),
        ("days", lambda r: r.get("days")),
    ]
    for kind in kinds:
        rows += [
            (f"churned ({kind})", _at("churned", kind, "accounts")),
            ("  flagged high >= 30 days before", _at("churned", kind, "flagged_high_30d_before")),
            ("  flagged high >= 14 days before", _at("churned", kind, "flagged_high_14d_before")),
            ("  never flagged high", _at("churned", kind, "never_flagged_high")),
            ("  lead days p25 / p50 / p75", _leads(kind)),
            ("  health AUC 30 days before", _at("churned", kind, "health_auc_30d_before")),
        ]
    rows += [
        ("retained", _at("retained", "accounts")),
        ("  ever high after first 30 days", _at("retained", "ever_high_after_first_30_days")),
        ("high-risk account-days", _at("high_risk_account_days", "share")),
        ("alerts per CSM per week", _at("alerts", "per_csm_per_week")),
        ("tasks per CSM per week S / A / B / C", _tasks_by_tier),
        ("tiers S / A / B / C / none", _tier_counts),
        ("revenue share S / A / B / C", _tier_revenue),
        ("tier matches revenue truth", _at("tiers", "match_revenue_truth", "share")),
    ]
    return rows


def _at(*path: str) -> Read:
    return lambda report: _dig(report, *path)


def _dig(value: object, *path: str) -> object:
    """The value at ``path`` in nested JSON objects; None where one is missing."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _leads(kind: str) -> Read:
    def read(report: Report) -> str:
        leads = _dig(report, "churned", kind, "lead_days")
        return " / ".join(_cell(_dig(leads, p)) for p in ("p25", "p50", "p75"))

    return read


def _tasks_by_tier(report: Report) -> str:
    per_tier = _dig(report, "tasks", "per_csm_per_week")
    if not isinstance(per_tier, dict):
        return "-"
    return " / ".join(f"{per_tier.get(t, 0.0):.2f}" for t in ("S", "A", "B", "C"))


def _tier_counts(report: Report) -> str:
    tiers = report.get("tiers", {})
    return " / ".join(
        str(tiers.get(t, {}).get("accounts", 0)) for t in ("S", "A", "B", "C", "none")
    )


def _tier_revenue(report: Report) -> str:
    tiers = report.get("tiers", {})
    return " / ".join(_cell(tiers.get(t, {}).get("revenue_share")) for t in ("S", "A", "B", "C"))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if value <= 1 else f"{value:.0f}"
    return str(value)
