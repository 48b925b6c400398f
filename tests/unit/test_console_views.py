"""The console's pure parts: what pages show, and sessions sealed in cookies."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.console import views
from services.console.oidc import Identity, identity_of
from services.console.session import Session, Sessions
from services.console.settings import ConsoleSettings
from services.scoring.schemas import AccountSummary, HistoryEntry
from shared.scores import Band, Driver, Risk, Tier


def test_money_and_chart_series() -> None:
    entries = [
        _entry(sequence=2, computed_at="2026-11-02T00:00:00+00:00", health_score=40),
        _entry(sequence=1, computed_at="2026-11-01T00:00:00+00:00", health_score=80),
    ]

    assert views.money(1234567, "eur") == "12,345.67 EUR" and views.money(None) == "-"
    now = datetime(2026, 11, 3, tzinfo=UTC)
    series = views.chart_series(entries, now)
    assert series["health"] == [80, 40, 40] and series["t"][-1] == now.timestamp()
    assert [c.sequence for c in views.changes(entries)] == [2, 1]
    entries[0].components = {"engagement": 30}
    entries[1].components = {"engagement": 90, "billing": 100}
    components = views.component_series(entries, now)
    assert components["components"] == {"billing": [100, None, None], "engagement": [90, 30, 30]}
    entries[0].risk, entries[0].tier = Risk.high, Tier.A
    entries[1].risk, entries[1].tier = Risk.low, None
    standing = views.standing_series(entries, now)
    assert standing["risk"] == [0, 2, 2] and standing["tier"] == [None, 2, 2]
    assert standing["tiers"][2] == "A" and standing["t"] == series["t"]
    assert views.band_zones({"bands": {"green_at": 75, "yellow_at": 45}}) == {
        "green_at": 75,
        "yellow_at": 45,
    }


def test_times_show_in_utc_to_the_minute() -> None:
    paris = timezone(timedelta(hours=1))

    assert views.when(datetime(2026, 11, 2, 10, 30, 59, tzinfo=paris)) == "2026-11-02 09:30 UTC"
    assert views.when(None) == "-"


def _summary(
    account_id: str, *, tier: str | None, score_change: int | None, health_score: int | None
) -> AccountSummary:
    """An account of the accounts list as the scoring API answers it; the rest unknown."""
    return AccountSummary(
        account_id=account_id,
        tier=Tier(tier) if tier else None,
        score_change=score_change,
        health_score=health_score,
        name=None,
        band=None,
        risk=None,
        stage=None,
        owner=None,
        segment=None,
        mrr_minor=None,
        value_score=None,
        stale=None,
        scored_at=None,
    )


def _entry(*, sequence: int, computed_at: str, health_score: int) -> HistoryEntry:
    """A material change as the scoring API answers it: green, no components yet."""
    return HistoryEntry(
        sequence=sequence,
        computed_at=datetime.fromisoformat(computed_at),
        health_score=health_score,
        band=Band.green,
        components={},
        tier=None,
        value_score=None,
        risk=None,
        stage=None,
        trigger=None,
        scorecard=None,
        drivers=[],
    )


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


def test_a_provider_names_the_person_and_its_groups_say_whether_they_may_act() -> None:
    claims = {"sub": "u-1", "email": "alice@example.com", "name": " Alice ", "groups": ["csm"]}

    assert identity_of(claims, "csm") == Identity("Alice", may_act=True)
    assert identity_of(claims, "admins").may_act is False
    assert identity_of(claims, None).may_act is False
    assert identity_of({"sub": "u-2", "groups": "csm"}, "csm") == Identity("u-2", False)
    assert identity_of({"email": "bob@example.com"}, None).name == "bob@example.com"


def test_a_session_signed_in_through_the_provider_keeps_whether_it_may_act() -> None:
    sessions = Sessions(Fernet.generate_key(), timedelta(hours=1))

    opened = sessions.open(sessions.seal(Session(key="", name="Bob", may_act=False)))

    assert opened == Session(key="", name="Bob", may_act=False)


def test_sign_in_through_a_provider_is_refused_at_start_without_what_it_needs() -> None:
    with pytest.raises(ValidationError) as refused:
        ConsoleSettings(console_oidc_issuer="https://idp.example.com")

    assert "VITALS_CONSOLE_OIDC_CLIENT_ID, VITALS_CONSOLE_API_KEY" in str(refused.value)
    complete = ConsoleSettings(
        console_oidc_issuer="https://idp.example.com",
        console_oidc_client_id="vitals",
        console_api_key="vk_console",
    )
    assert complete.console_oidc_act_group is None  # nobody acts unless a group says so


def _driver(component: str, points: float, text: str) -> Driver:
    return Driver(component=component, points=points, text=text)


def test_drivers_read_as_percents_of_usual_and_a_reweighting_says_so() -> None:
    ratio = _driver(
        "activity_trend", -9, "usage last 14 days / own baseline 0.54 -> 0.35, -9 points"
    )
    seats = _driver("engagement", 4.5, "active users / seats 0.4 -> 0.62, +4.5 points")
    reweighted = _driver("recency", -35.1, "days since last usage 0 -> 0, -35.1 points")
    arrived = _driver("billing", 20, "subscription status none -> active, +20 points")
    plain = _driver("cap", -3, "score cap, -3 points")

    said = [d.text for d in views.drivers_in_words([ratio, seats, reweighted, arrived, plain])]

    assert said == [
        "usage last 14 days: 54% -> 35% of usual, -9 points",
        "active users: 40% -> 62% of seats, +4.5 points",
        "days since last usage 0, unchanged: billing data arrived; weights rebalanced, "
        "-35.1 points",
        "subscription status active (new data), +20 points",
        "score cap, -3 points",
    ]
    alone = views.drivers_in_words([reweighted])[0].text
    assert alone == "days since last usage 0, unchanged: weights rebalanced, -35.1 points"


def test_the_30_day_story_adds_up_each_component_over_the_span() -> None:
    now = datetime(2026, 12, 8, 12, tzinfo=UTC)
    old = _entry(sequence=1, computed_at="2026-10-01T00:00:00Z", health_score=80)
    drop = _entry(sequence=2, computed_at="2026-11-20T00:00:00Z", health_score=62)
    drop.drivers = [
        _driver("activity_trend", -12, "x"),
        _driver("engagement", -6, "y"),
    ]
    more = _entry(sequence=3, computed_at="2026-12-01T00:00:00Z", health_score=55)
    more.drivers = [_driver("activity_trend", -9, "x"), _driver("engagement", 2, "y")]
    labels = {"activity_trend": "usage vs baseline"}

    told = views.story([more, old, drop], now, labels)

    assert told is not None
    assert (told.health_then, told.health_now, told.change) == (80, 55, -25)
    assert told.moved_by == [("usage vs baseline", -21.0), ("engagement", -4.0)]
    assert views.story([old], now, labels) is None
    # Without a change before the span, the first one's drivers say where it began.
    first = views.story([drop, more], now, labels)
    assert first is not None and first.health_then == 80


def test_renewal_dates_say_how_far_they_are() -> None:
    today = datetime(2026, 12, 8, tzinfo=UTC).date()
    assert views.renews(today + timedelta(days=14), today) == "2026-12-22 (in 14 days)"
    assert views.renews(today, today) == "2026-12-08 (today)"
    assert views.renews(today - timedelta(days=1), today) == "2026-12-07 (1 day ago)"
    assert views.renews(None, today) == "-"


def test_the_accounts_list_leaves_churned_out_unless_asked_and_renewal_becomes_dates() -> None:
    today = datetime(2026, 12, 8, tzinfo=UTC).date()
    assert views.list_query({"tier": "S", "junk": "x"}) == {"tier": "S", "churned": "false"}
    query = views.list_query({"churned": "any", "renews_within": "60"})
    assert views.api_query(query, today) == {
        "renews_from": "2026-12-08",
        "renews_until": "2027-02-06",
    }
    assert views.api_query({"churned": "true"}, today) == {"churned": "true"}
    with pytest.raises(ValueError, match="renews_within must be one of"):
        views.api_query({"renews_within": "7"}, today)


def test_a_csv_row_holds_every_column_and_blanks_for_unknowns() -> None:
    account = _summary("a1", tier="S", score_change=-3, health_score=70)
    row = views.csv_row(account)
    assert len(row) == len(views.CSV_COLUMNS)
    assert dict(zip(views.CSV_COLUMNS, row, strict=True)) == {
        **dict.fromkeys(views.CSV_COLUMNS, ""),
        "account_id": "a1",
        "health_score": 70,
        "change_7d": -3,
        "tier": "S",
    }


def test_group_labels_come_from_the_scorecard() -> None:
    definition = {"groups": {"billing": {"label": "billing health"}, "odd": 3}}
    assert views.group_labels(definition) == {"billing": "billing health"}
    assert views.group_labels(None) == {}
