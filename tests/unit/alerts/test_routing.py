import pytest

from services.alerts.delivery.routing import parse_routes
from services.alerts.documents import ConfigError
from services.alerts.rules.engine import Labels

CHANNELS = {"cs-all", "strategic", "owner-mail", "growth", "risk-desk"}
TREE = {
    "receivers": ["cs-all"],
    "routes": [
        {"match": {"tier": ["S"]}, "receivers": ["strategic", "owner-mail"], "continue": True},
        {"match": {"rule": ["tier_changed"]}, "receivers": ["growth"]},
        {
            "match": {"risk": ["high"]},
            "receivers": ["risk-desk"],
            "routes": [{"match": {"segment": ["smb"]}, "receivers": ["cs-all"]}],
        },
        {"match": {"owner": ["@sam"]}, "receivers": ["owner-mail"]},
    ],
}


def labels(**fields: str | None) -> Labels:
    values: dict[str, str | None] = {"account_id": "acme", "rule": "churn_risk_raised"}
    return Labels(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (labels(), ["cs-all"]),
        (labels(tier="S"), ["strategic", "owner-mail"]),  # continue, but nothing else matches
        (labels(tier="S", rule="tier_changed"), ["strategic", "owner-mail", "growth"]),
        (labels(rule="tier_changed", risk="high"), ["growth"]),  # first match stops
        (labels(risk="high", segment="enterprise"), ["risk-desk"]),
        (labels(risk="high", segment="SMB"), ["cs-all"]),  # the nested route wins
        (labels(owner_slack="@sam"), ["owner-mail"]),
        (labels(owner_email="sam@x"), ["cs-all"]),
    ],
)
def test_first_match_continue_and_default(alert: Labels, expected: list[str]) -> None:
    assert parse_routes(TREE, CHANNELS).receivers_for(alert) == expected


def test_an_empty_tree_routes_nowhere() -> None:
    assert parse_routes(None, set()).receivers_for(labels()) == []


def test_unknown_receivers_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown channels \['nowhere'\]"):
        parse_routes({"routes": [{"receivers": ["nowhere"]}]}, CHANNELS)


def test_bad_matchers_name_the_field() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_routes({"routes": [{"match": {"tier": ["Z"], "colour": ["red"]}}]}, CHANNELS)

    assert str(raised.value).splitlines()[1:] == [
        "  routes[0].match.tier[0]: Input should be 'S', 'A', 'B' or 'C'",
        "  routes[0].match.colour: Extra inputs are not permitted",
    ]
