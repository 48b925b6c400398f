"""How a model did, from its ledger: early warning, false alarms, separation, tiers.

Pure: ledgers, outcomes and alert notices in, numbers out.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NotRequired, TypedDict

from services.backtest.ledger import NONE, Ledger, Trace
from services.scoring.domain import Portfolio
from services.scoring.scorecard import RevenueShare
from shared.scores import Tier

HIGH = 2
SETTLING_DAYS = 30  # an account's first days, and the replay's: too early to judge
LEAD_BUCKETS = ((0, 7), (7, 14), (14, 30), (30, 60), (60, 90), (90, 10_000))
LEVEL_OF_TIER = {Tier.S: "S", Tier.A: "A or B", Tier.B: "A or B", Tier.C: "C"}
GLOSSARY = {
    "flagged high N days before": "the share of accounts that later cancelled whose churn"
    " risk was high at least N days before they cancelled",
    "lead days": "days from an account's first high risk to its cancelling (p25 / p50 / p75:"
    " a quarter, half, three quarters of the churned accounts had at most that many)",
    "health AUC 30 days before": "the chance that an account that cancelled 30 days later"
    " had a lower health score than one that stayed (0.5 is a coin toss, 1.0 perfect)",
    "false alarms (retained ever high)": "the share of accounts that stayed whose risk was"
    " high on some day after their first 30 days",
    "tier matches revenue truth": "the share of accounts whose tier level (S, A or B, C)"
    " on the last day is the one its share of the portfolio's revenue gives",
    "all churned / declines": "every account that cancelled / those that declined over"
    " weeks first (abrupt cancellations are the rest)",
}
"""The report's terms, for people: the chart and docs/backtest.md carry them."""


@dataclass(frozen=True)
class Churn:
    churned_on: date
    kind: str | None = None


class EarlyWarning(TypedDict):
    """How early a model warned of the cancellations of one kind (or all)."""

    accounts: int
    flagged_high_30d_before: float | None
    flagged_high_14d_before: float | None
    never_flagged_high: float | None
    lead_days: dict[str, float | None]
    lead_histogram: dict[str, int]
    health_auc_30d_before: float | None


class FalseAlarms(TypedDict):
    accounts: int
    ever_high_after_first_30_days: float | None
    ever_high: float | None


class HighDays(TypedDict):
    count: int
    share: float | None


class AlertLoad(TypedDict):
    notices: int
    csms: int
    weeks: float
    per_csm_per_week: float
    busiest_csm_week: int
    by_rule: dict[str, int]


class TaskLoad(TypedDict):
    """The tasks the playbooks made: per CSM (account owner) per week, by tier."""

    tasks: int
    csms: int
    per_csm_per_week: dict[str, float]
    busiest_csm_week: int
    by_playbook: dict[str, int]


TierShare = dict[str, float | None]
"""``accounts`` and ``revenue_share`` of a tier; ``share`` of ``match_revenue_truth``."""


class Report(TypedDict):
    """One model's report, as ``--report`` writes it; a ledger of no days has only
    its name and zeros."""

    model: str
    days: int
    accounts: int
    churned: NotRequired[dict[str, EarlyWarning]]
    retained: NotRequired[FalseAlarms]
    high_risk_account_days: NotRequired[HighDays]
    alerts: NotRequired[AlertLoad]
    tasks: NotRequired[TaskLoad]
    tiers: NotRequired[dict[str, TierShare]]


def summarise(
    ledger: Ledger,
    outcomes: dict[str, Churn],
    notices: list[tuple[date, str, str]],
    truth: RevenueShare,
    tasks: list[tuple[date, str, str, str]] | None = None,
) -> Report:
    if ledger.start is None or ledger.last is None:
        return {"model": ledger.name, "days": 0, "accounts": 0}
    churned = _churned(ledger, outcomes)
    retained = {a: t for a, t in ledger.traces.items() if a not in outcomes}
    kinds = sorted({o.kind for a, o in churned.items() if o.kind})
    groups = {"all": churned} | {
        k: {a: o for a, o in churned.items() if o.kind == k} for k in kinds
    }
    report: Report = {
        "model": ledger.name,
        "days": (ledger.last - ledger.start).days + 1,
        "accounts": len(ledger.traces),
        "churned": {
            name: _early_warning(ledger, group, retained) for name, group in groups.items()
        },
        "retained": _false_alarms(retained),
        "high_risk_account_days": _high_days(ledger),
        "alerts": _alerts(ledger, notices),
        "tiers": _tiers(ledger, truth),
    }
    if tasks is not None:
        report["tasks"] = _tasks(ledger, tasks)
    return report


def _churned(ledger: Ledger, outcomes: dict[str, Churn]) -> dict[str, Churn]:
    """Cancellations a model could have seen coming: a month into the replay or later."""
    assert ledger.start is not None and ledger.last is not None
    earliest = ledger.start + timedelta(days=SETTLING_DAYS)
    return {
        account: outcome
        for account, outcome in outcomes.items()
        if account in ledger.traces and earliest <= outcome.churned_on <= ledger.last
    }


def _early_warning(
    ledger: Ledger, churned: dict[str, Churn], retained: dict[str, Trace]
) -> EarlyWarning:
    leads: list[int | None] = []
    for account, outcome in churned.items():
        leads.append(_lead(ledger.traces[account], ledger.day_index(outcome.churned_on)))
    flagged = [lead for lead in leads if lead is not None]
    count = len(leads)
    return {
        "accounts": count,
        "flagged_high_30d_before": _share(sum(1 for d in flagged if d >= 30), count),
        "flagged_high_14d_before": _share(sum(1 for d in flagged if d >= 14), count),
        "never_flagged_high": _share(count - len(flagged), count),
        "lead_days": _quartiles(flagged),
        "lead_histogram": _histogram(leads),
        "health_auc_30d_before": _auc(ledger, churned, retained, 30),
    }


def _lead(trace: Trace, churned_index: int) -> int | None:
    """Days from the first high-risk day before cancelling to the cancellation."""
    for index in range(trace.first, churned_index):
        if trace.at(index)[1] == HIGH:
            return churned_index - index
    return None


def _quartiles(values: list[int]) -> dict[str, float | None]:
    if len(values) < 2:
        only = float(values[0]) if values else None
        return {"p25": only, "p50": only, "p75": only}
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return {"p25": p25, "p50": p50, "p75": p75}


def _histogram(leads: list[int | None]) -> dict[str, int]:
    found = {_bucket_name(low, high): 0 for low, high in LEAD_BUCKETS} | {"never": 0}
    for lead in leads:
        bucket = next(
            ((lo, hi) for lo, hi in LEAD_BUCKETS if lead is not None and lo <= lead < hi), None
        )
        found[_bucket_name(*bucket) if bucket else "never"] += 1
    return found


def _bucket_name(low: int, high: int) -> str:
    return f"{low}-{high - 1}" if high < 10_000 else f"{low}+"


def _auc(
    ledger: Ledger, churned: dict[str, Churn], retained: dict[str, Trace], ahead: int
) -> float | None:
    """The chance that an account about to cancel has lower health ``ahead`` days
    before than a retained account on the same day (ties count half)."""
    wins = pairs = 0.0
    by_day: dict[int, list[int]] = {}
    for account, outcome in churned.items():
        index = ledger.day_index(outcome.churned_on) - ahead
        health = ledger.traces[account].at(index)[0]
        if health == NONE:
            continue
        if index not in by_day:
            by_day[index] = sorted(h for t in retained.values() if (h := t.at(index)[0]) != NONE)
        others = by_day[index]
        below = bisect.bisect_left(others, health)
        same = bisect.bisect_right(others, health) - below
        wins += len(others) - below - same + same / 2
        pairs += len(others)
    return round(wins / pairs, 4) if pairs else None


def _false_alarms(retained: dict[str, Trace]) -> FalseAlarms:
    flagged = sum(1 for t in retained.values() if HIGH in t.risk[SETTLING_DAYS:])
    return {
        "accounts": len(retained),
        "ever_high_after_first_30_days": _share(flagged, len(retained)),
        "ever_high": _share(sum(1 for t in retained.values() if HIGH in t.risk), len(retained)),
    }


def _high_days(ledger: Ledger) -> HighDays:
    high = sum(t.risk.count(HIGH) for t in ledger.traces.values())
    days = sum(len(t.risk) for t in ledger.traces.values())
    return {"count": high, "share": _share(high, days)}


def _alerts(ledger: Ledger, notices: list[tuple[date, str, str]]) -> AlertLoad:
    assert ledger.start is not None and ledger.last is not None
    csms = {t.owner or "unassigned" for t in ledger.traces.values()}
    weeks = ((ledger.last - ledger.start).days + 1) / 7
    per_week = Counter((owner, (day - ledger.start).days // 7) for day, owner, _ in notices)
    return {
        "notices": len(notices),
        "csms": len(csms),
        "weeks": round(weeks, 1),
        "per_csm_per_week": round(len(notices) / (len(csms) * weeks), 2) if csms else 0.0,
        "busiest_csm_week": max(per_week.values(), default=0),
        "by_rule": dict(sorted(Counter(rule for _, _, rule in notices).items())),
    }


def _tasks(ledger: Ledger, tasks: list[tuple[date, str, str, str]]) -> TaskLoad:
    """Tasks of CSMs (not of team queues) per CSM per week, by the account's tier."""
    assert ledger.start is not None and ledger.last is not None
    start = ledger.start
    csms = {t.owner or "unassigned" for t in ledger.traces.values()}
    weeks = ((ledger.last - start).days + 1) / 7
    owned = [(day, owner, tier) for day, owner, tier, _ in tasks if owner in csms]
    by_tier = Counter(tier for _, _, tier in owned)
    per_week = Counter((owner, (day - start).days // 7) for day, owner, _ in owned)
    return {
        "tasks": len(tasks),
        "csms": len(csms),
        "per_csm_per_week": {
            tier: round(count / (len(csms) * weeks), 2) for tier, count in sorted(by_tier.items())
        },
        "busiest_csm_week": max(per_week.values(), default=0),
        "by_playbook": dict(sorted(Counter(playbook for *_, playbook in tasks).items())),
    }


def _tiers(ledger: Ledger, truth: RevenueShare) -> dict[str, TierShare]:
    traces = ledger.traces.values()
    total = sum(t.mrr_minor or 0 for t in traces)
    found: dict[str, TierShare] = {}
    for name in ("S", "A", "B", "C", "none"):
        members = [t for t in traces if (t.tier.value if t.tier else "none") == name]
        revenue = sum(t.mrr_minor or 0 for t in members)
        found[name] = {"accounts": len(members), "revenue_share": _share(revenue, total)}
    portfolio = Portfolio.of(t.mrr_minor for t in traces if t.mrr_minor is not None)
    matches = sum(1 for t in traces if _level(t.tier) == _truth(t, portfolio, truth))
    found["match_revenue_truth"] = {"share": _share(matches, len(ledger.traces))}
    return found


def _level(tier: Tier | None) -> str | None:
    return LEVEL_OF_TIER[tier] if tier is not None else None


def _truth(trace: Trace, portfolio: Portfolio, truth: RevenueShare) -> str | None:
    """S / A or B / C by revenue contribution on the last day; none without revenue."""
    if trace.mrr_minor is None:
        return None
    above = portfolio.revenue_share_above(trace.mrr_minor)
    assert above is not None
    if above < truth.s_until:
        return "S"
    return "C" if above >= truth.c_from else "A or B"


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
