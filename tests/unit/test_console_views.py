"""The console's pure parts: what pages show, and sessions sealed in cookies."""

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet

from services.console import views
from services.console.session import Session, Sessions


def test_attention_puts_valuable_tiers_then_the_biggest_drops_first() -> None:
    accounts: list[dict[str, Any]] = [
        {"account_id": "c-drop", "tier": "C", "score_change": -30, "health_score": 20},
        {"account_id": "s-flat", "tier": "S", "score_change": 0, "health_score": 35},
        {"account_id": "s-drop", "tier": "S", "score_change": -12, "health_score": 50},
        {"account_id": "none", "tier": None, "score_change": None, "health_score": None},
    ]

    ordered = [a["account_id"] for a in views.attention_first(accounts)]

    assert ordered == ["s-drop", "s-flat", "c-drop", "none"]


def test_money_and_chart_series() -> None:
    entries = [
        {"sequence": 2, "computed_at": "2026-11-02T00:00:00+00:00", "health_score": 40},
        {"sequence": 1, "computed_at": "2026-11-01T00:00:00+00:00", "health_score": 80},
    ]

    assert views.money(1234567, "eur") == "12,345.67 EUR" and views.money(None) == "-"
    now = datetime(2026, 11, 3, tzinfo=UTC)
    series = views.chart_series(entries, now)
    assert series["health"] == [80, 40, 40] and series["t"][-1] == now.timestamp()
    assert [c["sequence"] for c in views.changes(entries)] == [2, 1]
    entries[0]["components"] = {"engagement": 30}
    entries[1]["components"] = {"engagement": 90, "billing": 100}
    components = views.component_series(entries, now)
    assert components["components"] == {"billing": [100, None, None], "engagement": [90, 30, 30]}
    entries[0] |= {"risk": "high", "tier": "A"}
    entries[1] |= {"risk": "low", "tier": None}
    standing = views.standing_series(entries, now)
    assert standing["risk"] == [0, 2, 2] and standing["tier"] == [None, 2, 2]
    assert standing["tiers"][2] == "A" and standing["t"] == series["t"]
    assert views.band_zones({"bands": {"green_at": 75, "yellow_at": 45}}) == {
        "green_at": 75,
        "yellow_at": 45,
    }


def test_after_sign_in_only_a_path_of_the_console_is_followed() -> None:
    assert views.safe_next("/accounts/a%2Fb?range=1y") == "/accounts/a%2Fb?range=1y"
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert views.safe_next(elsewhere) == "/"


def test_a_session_opens_until_it_expires_and_never_when_altered() -> None:
    now = [1_000_000.0]
    sessions = Sessions(Fernet.generate_key(), timedelta(hours=1), clock=lambda: now[0])
    cookie = sessions.seal(Session(key="vk_x", name="Kim"))

    now[0] += 3600
    assert sessions.open(cookie) == Session(key="vk_x", name="Kim")
    assert sessions.open(cookie[:-2] + "AA") is None
    now[0] += 1
    assert sessions.open(cookie) is None
    assert Sessions(Fernet.generate_key(), timedelta(hours=1)).open(cookie) is None
    assert sessions.open(None) is None and sessions.open("garbage") is None


def test_the_portfolio_movement_in_words() -> None:
    assert [views.moved(5, 2), views.moved(2, 5), views.moved(3, 3)] == ["+3", "-3", "0"]
    assert views.moved(1200, 0) == "+1,200"
    assert [views.moved_share(0.5, 0.25), views.moved_share(0.3, 0.3)] == ["+25 pts", "0"]
    assert views.signed_money(1050, "eur") == "+10.50 EUR" and views.signed_money(-5) == "-0.05"
    assert views.names_of({"S": 1, "A": 2}, {"B": 3, "S": 0}) == ["A", "B", "S"]
    assert views.names_of({"low": 1}, None) == ["low"]
