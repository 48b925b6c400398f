"""The backtest runs the playbooks through the alerts service's own function and
reports tasks per CSM per week by tier."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.alerts.playbooks.model import load_playbooks
from services.alerts.rules.ruleset import load_rules
from services.alerts.service import Judge
from services.alerts.settings import AlertsSettings
from services.alerts.tasks.service import TaskPolicy
from services.backtest.ledger import Ledger, Trace
from services.backtest.replay import AlertsReplay, Playbooks
from services.backtest.report import summarise
from services.scoring.scorecard import RevenueShare
from shared.scores import Risk, Tier
from tests.support.alerts_messages import enriched_change, facts, later

START = date(2026, 1, 1)


def _replay() -> AlertsReplay:
    policy = TaskPolicy.from_settings(AlertsSettings())
    return AlertsReplay(Judge(load_rules().enabled), playbooks=Playbooks(load_playbooks(), policy))


def test_a_risky_s_account_makes_the_save_play_once_however_often_it_is_judged() -> None:
    replay = _replay()
    now = datetime(2026, 1, 2, 23, 59, tzinfo=UTC)
    risky = enriched_change(
        account_id="big",
        tier=Tier.S,
        risk=Risk.high,
        previous_risk=Risk.low,
        computed_at=now,
        account=facts(owner_csm_email="dana@x", last_usage_at=now),
    )
    still = later(risky, timedelta(days=1))

    replay.judge_day([risky], now)
    replay.judge_day([still], now + timedelta(days=1))

    assert replay.tasks == [
        (now.date(), "dana@x", "S", "churn_save_s"),
        (now.date(), "queue:unassigned", "S", "churn_save_s"),
    ]


def test_tasks_are_reported_per_csm_per_week_by_tier() -> None:
    ledger = Ledger("m", start=START, last=START + timedelta(days=13))  # two weeks
    ledger.traces = {
        "a": Trace(first=0, tier=Tier.S, owner="dana@x"),
        "b": Trace(first=0, tier=Tier.B, owner="sam@x"),
    }
    tasks = [
        (START, "dana@x", "S", "churn_save_s"),
        (START, "dana@x", "S", "churn_save_s"),
        (START + timedelta(days=8), "sam@x", "B", "churn_save_b"),
        (START, "queue:billing", "B", "failed_payment"),
    ]

    report = summarise(ledger, {}, [], RevenueShare(), tasks)

    assert report["tasks"] == {
        "tasks": 4,
        "csms": 2,
        "per_csm_per_week": {"B": 0.25, "S": 0.5},  # queues are no CSM's load
        "busiest_csm_week": 2,
        "by_playbook": {"churn_save_b": 1, "churn_save_s": 2, "failed_payment": 1},
    }
    assert "tasks" not in summarise(ledger, {}, [], RevenueShare())
