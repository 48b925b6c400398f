"""Playbooks as data: the shipped set, errors naming the field, and what starts what."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from services.alerts.documents import ConfigError
from services.alerts.playbooks.matching import starts
from services.alerts.playbooks.model import load_playbooks, parse_playbooks
from services.alerts.rules import engine
from services.alerts.rules.ruleset import load_rules
from shared.scores import Risk, Stage, Tier
from tests.support.alerts_messages import enriched_change, facts, later, opened
from tests.support.events import T0


def test_the_shipped_set_loads_and_names_only_rules_that_exist() -> None:
    playbooks = load_playbooks()
    rules = {rule.name for rule in load_rules().rules}

    assert playbooks.ref == "default@1"
    named = {p.trigger.rule for p in playbooks.playbooks if p.trigger.kind == "alert_opened"}
    assert named <= rules
    tiers = sorted(
        tier
        for p in playbooks.playbooks
        if p.id.startswith("churn_save")
        for tier in p.match.tier or []
    )
    assert tiers == [Tier.A, Tier.B, Tier.C, Tier.S]


def test_a_bad_file_is_refused_naming_the_playbook_and_field(tmp_path: Path) -> None:
    document = {
        "id": "team",
        "version": 2,
        "playbooks": [
            {
                "id": "save",
                "title": "Save",
                "trigger": {"kind": "alert_opened", "rule": "churn_risk_raised"},
                "steps": [{"id": "call", "title": "Call", "owner": "the boss"}],
            },
            {"id": "save", "title": "Again", "trigger": {"kind": "manual"}, "steps": []},
        ],
    }
    path = tmp_path / "playbooks.yaml"
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ConfigError) as raised:
        load_playbooks(path)

    message = str(raised.value)
    assert message.startswith(f"{path} is invalid:")
    assert "playbooks[0] (save).steps[0] (call).owner" in message
    assert "not account_owner, owner_manager or queue:<name>" in message
    assert "playbooks[1] (save).steps: List should have at least 1 item" in message


def test_an_unknown_trigger_kind_is_named() -> None:
    with pytest.raises(ConfigError, match=r"playbooks\[0\] \(x\)\.trigger"):
        parse_playbooks(
            {"playbooks": [{"id": "x", "title": "X", "trigger": {"kind": "renewal"}, "steps": []}]}
        )


def test_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("playbooks: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_playbooks(path)


def _opened(rule: str, account_id: str = "acme") -> engine.Decision:
    decision = opened("risk high", {}, account_id=account_id)
    return engine.Decision(
        decision.transition,
        dataclasses.replace(decision.alert, rule=rule, id=f"{rule}-1"),
        decision.notify,
        decision.summary,
        decision.details,
    )


def test_a_churn_alert_on_an_s_account_starts_the_s_save_play_only() -> None:
    change = enriched_change(tier=Tier.S, risk=Risk.high, risk_reasons=["usage fell"])

    found = starts(load_playbooks().enabled, change, [_opened("churn_risk_raised")])

    assert [(s.playbook.id, s.episode, s.alert_id) for s in found] == [
        ("churn_save_s", "alert:churn_risk_raised-1", "churn_risk_raised-1")
    ]


def test_a_failed_payment_reason_also_starts_the_failed_payment_play() -> None:
    change = enriched_change(
        tier=Tier.B, risk=Risk.high, risk_reasons=["a failed payment unpaid for 7 days"]
    )

    found = starts(load_playbooks().enabled, change, [_opened("churn_risk_raised")])

    assert sorted(s.playbook.id for s in found) == ["churn_save_b", "failed_payment"]


def test_matchers_on_segment_stage_and_risk_must_all_hold() -> None:
    document = {
        "playbooks": [
            {
                "id": "ent",
                "title": "Enterprise only",
                "trigger": {"kind": "alert_opened", "rule": "account_silent"},
                "match": {"segment": ["Enterprise"], "stage": ["steady"], "risk": ["high"]},
                "steps": [{"id": "s", "title": "Do"}],
            }
        ]
    }
    playbooks = parse_playbooks(document).enabled
    decisions = [_opened("account_silent")]
    fits = enriched_change(risk=Risk.high, stage=Stage.steady, account=facts(segment="enterprise"))
    smb = enriched_change(risk=Risk.high, stage=Stage.steady, account=facts(segment="smb"))
    calm = enriched_change(risk=Risk.low, stage=Stage.steady, account=facts(segment="enterprise"))

    assert [s.playbook.id for s in starts(playbooks, fits, decisions)] == ["ent"]
    assert starts(playbooks, smb, decisions) == []
    assert starts(playbooks, calm, decisions) == []


def test_a_reminder_or_resolution_starts_nothing() -> None:
    change = enriched_change(tier=Tier.S, risk=Risk.high)
    decision = _opened("churn_risk_raised")
    reminded = engine.Decision(
        engine.Transition.reminded, decision.alert, True, decision.summary, decision.details
    )

    assert starts(load_playbooks().enabled, change, [reminded]) == []


def test_entering_onboarding_starts_kickoff_once_per_entry() -> None:
    first = enriched_change(stage=Stage.onboarding, previous_stage=None)
    still = later(first, timedelta(days=1), stage=Stage.onboarding, previous_stage=Stage.onboarding)
    playbooks = load_playbooks().enabled

    assert [(s.playbook.id, s.episode) for s in starts(playbooks, first, [])] == [
        ("onboarding_kickoff", "stage:onboarding:1")
    ]
    assert starts(playbooks, still, []) == []


def test_a_tier_up_starts_the_expansion_review_and_a_tier_down_does_not() -> None:
    base = enriched_change(tier=Tier.B)
    up = later(base, timedelta(days=1), tier=Tier.A)
    down = later(base, timedelta(days=1), tier=Tier.C)
    playbooks = load_playbooks().enabled

    assert [s.playbook.id for s in starts(playbooks, up, [])] == ["tier_up_expansion_review"]
    assert starts(playbooks, down, []) == []
    assert starts(playbooks, base, []) == []


def test_a_disabled_playbook_starts_nothing() -> None:
    document = {
        "playbooks": [
            {
                "id": "off",
                "title": "Off",
                "enabled": False,
                "trigger": {"kind": "tier_changed"},
                "steps": [{"id": "s", "title": "Do"}],
            }
        ]
    }
    change = later(enriched_change(tier=Tier.B, computed_at=T0), timedelta(days=1), tier=Tier.A)

    assert starts(parse_playbooks(document).enabled, change, []) == []
