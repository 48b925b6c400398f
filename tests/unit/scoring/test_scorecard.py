from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.scoring.domain import AccountState, apply_event, scorecard_for
from services.scoring.scorecard import (
    Scorecard,
    ScorecardError,
    ScorecardSet,
    load_scorecards,
    normalised,
    parse_scorecard,
)
from services.scoring.settings import ScoringSettings
from tests.support.scoring_builders import DEFAULT_SCORECARDS, V1_SCORECARD, traits


def _default_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(V1_SCORECARD.read_text())
    return data


def _card(**changes: Any) -> Scorecard:
    data = _default_data()
    data.update(changes)
    return parse_scorecard(data, "test")


def test_the_shipped_scorecard_loads_with_an_id_a_version_and_normalised_weights() -> None:
    cards = load_scorecards(DEFAULT_SCORECARDS)

    card = cards.default
    assert card.ref == "default@2"
    assert sum(card.group_weights().values()) == pytest.approx(1)
    assert card.group_weights()["activity_trend"] == pytest.approx(0.35)
    assert sum(card.measure_weights("billing").values()) == pytest.approx(1)


@given(st.dictionaries(st.text(min_size=1), st.floats(0.001, 1e6), min_size=1))
def test_weights_normalise_to_one(weights: dict[str, float]) -> None:
    result = normalised(weights)

    assert sum(result.values()) == pytest.approx(1)
    assert set(result) == set(weights)


def test_an_error_names_the_file_and_the_field() -> None:
    data = _default_data()
    data["groups"]["engagement"]["measures"]["active_users_per_seat"] = -1

    with pytest.raises(ScorecardError, match=r"here\.yaml: groups\.engagement\.measures"):
        parse_scorecard(data, "here.yaml")


def test_a_group_using_an_unknown_measure_is_refused() -> None:
    data = _default_data()
    data["groups"]["engagement"]["measures"]["nope"] = 1

    with pytest.raises(ScorecardError, match="unknown measure 'nope'"):
        parse_scorecard(data, "x")


def test_overall_weights_must_name_every_group() -> None:
    data = _default_data()
    del data["overall"]["weights"]["billing"]

    with pytest.raises(ScorecardError, match=r"overall\.weights must name every group"):
        parse_scorecard(data, "x")


def test_a_categorical_signal_needs_a_categories_threshold() -> None:
    data = _default_data()
    data["measures"]["subscription_status"]["threshold"] = {
        "style": "linear",
        "zero_at": 0,
        "full_at": 1,
    }

    with pytest.raises(ScorecardError, match="categories threshold"):
        parse_scorecard(data, "x")


def test_an_unknown_threshold_style_is_named() -> None:
    data = _default_data()
    data["measures"]["usage_trend"]["threshold"]["style"] = "curvy"

    with pytest.raises(ScorecardError, match=r"measures\.usage_trend\.threshold"):
        parse_scorecard(data, "x")


@pytest.mark.parametrize(
    ("threshold", "value", "score"),
    [
        ({"style": "linear", "zero_at": 0, "full_at": 1}, 0.5, 50),
        ({"style": "linear", "zero_at": 0, "full_at": 1}, 2, 100),
        ({"style": "linear", "zero_at": 30, "full_at": 0}, 6, 80),
        ({"style": "linear", "zero_at": 30, "full_at": 0}, 45, 0),
        ({"style": "linear-bounded", "zero_at": 0, "full_at": 1, "floor": 20}, 0.5, 60),
        ({"style": "linear-bounded", "zero_at": 0, "full_at": 1, "ceiling": 90}, 5, 90),
        ({"style": "bands", "bands": [{"at_least": 10, "score": 0}], "otherwise": 100}, 3, 100),
        ({"style": "bands", "bands": [{"at_least": 10, "score": 0}], "otherwise": 100}, 10, 0),
    ],
)
def test_threshold_styles(threshold: dict[str, Any], value: float, score: float) -> None:
    data = _default_data()
    data["measures"]["usage_trend"]["threshold"] = threshold

    card = parse_scorecard(data, "x")

    assert card.measures["usage_trend"].threshold.score(value) == pytest.approx(score)


def test_bands_must_descend() -> None:
    data = _default_data()
    data["measures"]["days_past_due"]["threshold"]["bands"].reverse()

    with pytest.raises(ScorecardError, match="strictly decreasing"):
        parse_scorecard(data, "x")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"active_users_recent_days": 14, "silent_days": 7}, "go with active_users_share_below"),
        (
            {"active_users_share_below": 0.8, "active_users_recent_days": 70},
            "active_users_recent_days must be below active_users_reference_days",
        ),
        ({"active_users_share_below": 0.8, "active_users_reference_days": 200}, "less than"),
        ({"active_users_share_below": 0.8, "for_days": 3}, "for_days goes with band"),
    ],
)
def test_an_active_users_share_condition_is_checked_whole(
    when: dict[str, Any], message: str
) -> None:
    rules = [{"risk": "high", "reason": "r", "when": when}]

    with pytest.raises(ScorecardError, match=message):
        _card(churn_risk={"rules": rules})


def _assigned(card_id: str, priority: int = 0, **match: list[str]) -> Scorecard:
    return _card(id=card_id, assignment={"priority": priority, "match": match})


def test_segment_rules_pick_a_scorecard_with_a_defined_tie_break() -> None:
    cards = ScorecardSet(
        [
            _card(),
            _assigned("smb", segment=["smb"]),
            _assigned("smb_pro", segment=["smb"], plan=["pro"]),
            _assigned("urgent", 5, plan=["pro"]),
            _assigned("a_twin", segment=["mid"]),
            _assigned("b_twin", segment=["mid"]),
        ]
    )

    assert cards.for_account("enterprise", None).id == "default"
    assert cards.for_account("smb", "basic").id == "smb"
    assert cards.for_account("smb", "pro").id == "urgent"  # priority first
    assert cards.for_account("mid", None).id == "a_twin"  # then specificity, then id
    plain = [_card(), _assigned("smb", segment=["smb"])]
    no_priority = ScorecardSet([*plain, _assigned("smb_pro", segment=["smb"], plan=["pro"])])
    assert no_priority.for_account("smb", "pro").id == "smb_pro"


def test_exactly_one_default_and_unique_ids() -> None:
    with pytest.raises(ScorecardError, match="exactly one scorecard must be the default"):
        ScorecardSet([_assigned("a", segment=["x"])])
    with pytest.raises(ScorecardError, match="exactly one scorecard must be the default"):
        ScorecardSet([_card(), _card(id="other")])
    with pytest.raises(ScorecardError, match="more than once"):
        ScorecardSet([_card(), _assigned("default", segment=["x"])])


def test_loading_reports_bad_yaml_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")

    with pytest.raises(ScorecardError, match=r"broken\.yaml: not valid YAML"):
        load_scorecards(tmp_path)
    with pytest.raises(ScorecardError, match="no such scorecard"):
        load_scorecards(tmp_path / "missing")
    with pytest.raises(ScorecardError, match=r"no \*\.yaml"):
        load_scorecards(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_a_single_file_can_be_the_scorecard_path() -> None:
    assert load_scorecards(DEFAULT_SCORECARDS / "default.yaml").default.id == "default"


def test_the_settings_refuse_a_broken_scorecard_naming_file_and_field(tmp_path: Path) -> None:
    data = _default_data()
    data["bands"] = {"green_at": 30, "yellow_at": 40}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(data))

    with pytest.raises(ValidationError, match=r"card\.yaml: bands: .*yellow_at must be below"):
        ScoringSettings(scoring_scorecards_path=tmp_path)


def test_an_account_is_scored_by_the_scorecard_its_segment_picks(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text((DEFAULT_SCORECARDS / "default.yaml").read_text())
    smb = _default_data() | {
        "id": "smb",
        "version": 3,
        "assignment": {"match": {"segment": ["smb"]}},
    }
    (tmp_path / "smb.yaml").write_text(yaml.safe_dump(smb))
    cards = load_scorecards(tmp_path)
    state = AccountState(account_id="acme")
    apply_event(state, traits(segment="smb"))
    other = AccountState(account_id="other")
    apply_event(other, traits(segment="enterprise"))

    assert scorecard_for(state, cards).ref == "smb@3"
    assert scorecard_for(other, cards).ref == "default@2"


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("churn_risk.rules.0.reason", lambda d: d["churn_risk"]["rules"][0]),
        ("measures", lambda d: next(iter(d["measures"].values()))),
    ],
)
def test_texts_a_score_change_quotes_are_refused_with_control_characters(
    where: str, change: Any
) -> None:
    """A folded YAML scalar ends with a newline: refused at load, never when scoring."""
    data = _default_data()
    part = change(data)
    key = "reason" if "reason" in part else "label"
    part[key] = part[key] + "\n"

    with pytest.raises(ScorecardError, match=f"{where.split('.')[0]}.*must not contain control"):
        parse_scorecard(data, "here.yaml")
