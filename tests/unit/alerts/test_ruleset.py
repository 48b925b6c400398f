import re
from datetime import timedelta
from pathlib import Path

import pytest

from services.alerts.documents import ConfigError
from services.alerts.durations import parse_duration
from services.alerts.rules.kinds import ChurnRiskRaised, SharpHealthDrop
from services.alerts.rules.ruleset import load_rules, parse_rules
from shared.scores import Risk


def test_the_shipped_defaults_load_with_every_rule_kind() -> None:
    rules = load_rules()

    assert [rule.kind for rule in rules.rules] == [
        "churn_risk_raised",
        "sharp_health_drop",
        "tier_changed",
        "account_silent",
        "renewal_at_risk",
    ]
    drop = rules.rules[1]
    assert isinstance(drop, SharpHealthDrop)
    assert (drop.points, drop.within, drop.cooldown) == (25, timedelta(days=7), timedelta(days=7))
    risk = rules.rules[0]
    assert isinstance(risk, ChurnRiskRaised) and risk.min_risk is Risk.high


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("2w", timedelta(weeks=2))],
)
def test_durations_read_as_people_write_them(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_errors_name_the_rule_and_the_field() -> None:
    document = {
        "rules": [
            {"name": "drop", "kind": "sharp_health_drop", "points": 0},
            {"name": "quiet", "kind": "account_silent", "days": "soon"},
            {"name": "risk", "kind": "churn_risk_raised", "cooldown": "tomorrow"},
        ]
    }

    with pytest.raises(ConfigError) as raised:
        parse_rules(document, "my-rules.yaml")

    assert str(raised.value).splitlines() == [
        "my-rules.yaml is invalid:",
        "  rules[0] (drop).points: Input should be greater than 0",
        "  rules[1] (quiet).days: Input should be a valid integer, unable to parse string as an"
        " integer",
        "  rules[2] (risk).cooldown: Value error, 'tomorrow' is not a duration like 30s, 5m,"
        " 24h, 7d or 2w",
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "nope"}, "Input tag 'nope' found using 'kind'"),
        (
            {"kind": "account_silent", "dayz": 3},
            "rules[0] (r).dayz: Extra inputs are not permitted",
        ),
        (
            {"kind": "churn_risk_raised", "min_risk": "medium", "resolve_at": "medium"},
            "resolve_at must be a lower risk than min_risk",
        ),
        (
            {"kind": "sharp_health_drop", "points": 5, "hysteresis_points": 5},
            "hysteresis_points must be smaller than points",
        ),
        ({"kind": "renewal_at_risk", "bands": []}, "rules[0] (r).bands: List should have at least"),
    ],
)
def test_bad_rules_are_refused(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_rules({"rules": [{"name": "r", **rule}]})


def test_rule_names_are_unique() -> None:
    rule = {"name": "twice", "kind": "tier_changed"}

    with pytest.raises(ConfigError, match="repeated: twice"):
        parse_rules({"rules": [rule, rule]})


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text("rules: [unclosed")

    with pytest.raises(ConfigError, match=r"rules\.yaml: not valid YAML"):
        load_rules(broken)
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read"):
        load_rules(tmp_path / "absent.yaml")
