from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from pydantic import JsonValue, TypeAdapter

from services.alerts.rules.engine import (
    Alert,
    AlertState,
    Decision,
    HealthHistory,
    Labels,
    Silence,
    Transition,
    alert_id,
    evaluate,
    notice_id,
    ordinal,
    remember_health,
    silenced,
)
from services.alerts.rules.kinds import Rule
from services.alerts.rules.ruleset import load_rules, parse_rules
from shared.scores import Risk, ScoreChange, Stage, Tier, Trigger
from tests.support.alerts_messages import TEST_RULES, driver, enriched_change, facts, later
from tests.support.events import T0

DAY = timedelta(days=1)
RULES = {rule.name: rule for rule in load_rules(TEST_RULES).rules}


def rule(name: str, **overrides: object) -> Rule:
    if not overrides:
        return RULES[name]
    document = {**RULES[name].model_dump(mode="json"), **overrides}
    return parse_rules({"rules": [document]}).rules[0]


class Run:
    """Feeds messages through the engine the way the consumer does, keeping its state."""

    def __init__(self, *rules: Rule, silences: list[Silence] | None = None) -> None:
        self.rules = list(rules)
        self.silences = silences or []
        self.history: HealthHistory = []
        self.alerts: dict[str, Alert] = {}

    def feed(self, change: ScoreChange, now: datetime | None = None) -> list[Decision]:
        result = evaluate(
            self.rules,
            change,
            self.history,
            self.alerts,
            self.silences,
            now or change.computed_at,
            risk_absent_high_below=40,
        )
        self.history = result.history
        for decision in result.decisions:
            self.alerts[decision.alert.rule] = decision.alert
        return result.decisions


def kinds(decisions: list[Decision]) -> list[tuple[str, bool]]:
    return [(d.transition.value, d.notify) for d in decisions]


DRIVERS = TypeAdapter(list[dict[str, JsonValue]])


def drivers_of(decision: Decision) -> list[dict[str, JsonValue]]:
    """The drivers a decision's details name; fails unless they are a list of objects."""
    return DRIVERS.validate_python(decision.details["drivers"])


# --- churn risk -----------------------------------------------------------------------


def test_risk_raised_to_medium_opens_with_its_top_drivers() -> None:
    drivers = [driver("recency", -3), driver("engagement", -12), driver("billing", 2)]
    change = enriched_change(
        risk=Risk.medium, previous_risk=Risk.low, risk_reasons=["usage down 40%"], drivers=drivers
    )

    (decision,) = Run(rule("churn_risk_raised", top_drivers=2)).feed(change)

    assert (decision.transition, decision.notify) == (Transition.opened, True)
    assert decision.summary == "Churn risk low -> medium: usage down 40%"
    assert [d["component"] for d in drivers_of(decision)] == ["engagement", "recency"]
    assert decision.alert.id == alert_id("acme", "churn_risk_raised", 1)
    assert (decision.alert.severity, decision.alert.notifications) == ("medium", 1)


def test_repeated_risk_messages_keep_one_alert_and_escalate_once() -> None:
    run = Run(rule("churn_risk_raised"))
    first = enriched_change(risk=Risk.medium)
    same = later(first, timedelta(hours=1), risk=Risk.medium)
    higher = later(same, timedelta(hours=1), risk=Risk.high)
    still = later(higher, timedelta(hours=1), risk=Risk.high)

    results = [kinds(run.feed(change)) for change in (first, same, higher, still)]

    assert results == [[("opened", True)], [], [("escalated", True)], []]
    assert run.alerts["churn_risk_raised"].episode == 1


def test_risk_resolves_only_at_the_resolve_level() -> None:
    run = Run(rule("churn_risk_raised", min_risk="high", resolve_at="low"))
    high = enriched_change(risk=Risk.high)
    medium = later(high, DAY, risk=Risk.medium)
    low = later(medium, DAY, risk=Risk.low)

    assert kinds(run.feed(high)) == [("opened", True)]
    assert run.feed(medium) == []  # inside the hysteresis band: no flapping
    (resolved,) = run.feed(low)

    assert (resolved.transition, resolved.notify) == (Transition.resolved, True)
    assert resolved.summary == "Churn risk back to low"
    assert resolved.alert.resolved_at == low.computed_at


def test_a_new_episode_after_resolution_gets_a_new_id() -> None:
    run = Run(rule("churn_risk_raised"))
    high = enriched_change(risk=Risk.high)
    low = later(high, DAY, risk=Risk.low)
    again = later(low, DAY, risk=Risk.high)

    first = run.feed(high)[0].alert.id
    run.feed(low)
    second = run.feed(again)[0].alert

    assert second.episode == 2 and second.id == alert_id("acme", "churn_risk_raised", 2)
    assert second.id != first


def test_messages_without_risk_fall_back_to_the_health_threshold() -> None:
    run = Run(rule("churn_risk_raised"))
    low = enriched_change(health_score=20, risk=None)

    (decision,) = run.feed(low)

    assert decision.summary == "Churn risk high: health 20 below 40"
    assert kinds(run.feed(later(low, DAY, health_score=60, risk=None))) == [("resolved", True)]


# --- cooldown, ack, snooze, silences ---------------------------------------------------


def test_an_open_alert_is_reminded_only_after_its_cooldown() -> None:
    run = Run(rule("churn_risk_raised", cooldown="24h"))
    first = enriched_change(risk=Risk.high)
    soon = later(first, timedelta(hours=23), risk=Risk.high)
    after = later(soon, timedelta(hours=2), risk=Risk.high)
    again = later(after, timedelta(hours=2), risk=Risk.high)

    results = [kinds(run.feed(change)) for change in (first, soon, after, again)]

    assert results == [[("opened", True)], [], [("reminded", True)], []]
    assert run.alerts["churn_risk_raised"].notifications == 2


def test_no_cooldown_means_no_reminders() -> None:
    run = Run(rule("churn_risk_raised", cooldown=None))
    first = enriched_change(risk=Risk.high)
    run.feed(first)

    assert run.feed(later(first, 30 * DAY, risk=Risk.high)) == []


def test_an_acknowledged_alert_is_not_reminded_but_its_resolution_is_told() -> None:
    run = Run(rule("churn_risk_raised"))
    first = enriched_change(risk=Risk.high)
    run.feed(first)
    run.alerts["churn_risk_raised"] = replace(run.alerts["churn_risk_raised"], acked_at=T0)

    assert run.feed(later(first, 3 * DAY, risk=Risk.high)) == []
    assert kinds(run.feed(later(first, 4 * DAY, risk=Risk.low))) == [("resolved", True)]


def test_a_snoozed_alert_is_quiet_until_the_snooze_ends() -> None:
    run = Run(rule("churn_risk_raised"))
    first = enriched_change(risk=Risk.medium)
    run.feed(first)
    until = T0 + 5 * DAY
    run.alerts["churn_risk_raised"] = replace(run.alerts["churn_risk_raised"], snoozed_until=until)

    assert run.feed(later(first, 2 * DAY, risk=Risk.high)) == [
        Decision(
            Transition.escalated,
            replace(run.alerts["churn_risk_raised"], severity="high"),
            False,
            "Churn risk medium -> high: no reason given",
            {"risk": "high", "previous_risk": "medium", "risk_reasons": [], "drivers": []},
        )
    ]
    assert run.feed(later(first, 3 * DAY, risk=Risk.high)) == []
    assert kinds(run.feed(later(first, 6 * DAY, risk=Risk.high))) == [("reminded", True)]


def test_a_silenced_alert_opens_quietly_and_is_told_when_the_silence_ends() -> None:
    silence = Silence(id="s1", ends_at=T0 + DAY, owner="DANA@vendor.example")
    run = Run(rule("churn_risk_raised"), silences=[silence])
    first = enriched_change(risk=Risk.high)

    assert kinds(run.feed(first)) == [("opened", False)]
    assert run.feed(later(first, timedelta(hours=2), risk=Risk.high)) == []
    assert kinds(run.feed(later(first, 2 * DAY, risk=Risk.high))) == [("reminded", True)]


def test_resolving_an_alert_nobody_was_told_about_stays_quiet() -> None:
    run = Run(rule("churn_risk_raised"), silences=[Silence(id="s", ends_at=T0 + DAY)])
    first = enriched_change(risk=Risk.high)
    run.feed(first)
    run.silences = []

    assert kinds(run.feed(later(first, timedelta(hours=1), risk=Risk.low))) == [("resolved", False)]


@pytest.mark.parametrize(
    ("silence", "muted"),
    [
        (Silence(id="s", ends_at=T0 + DAY, account_id="acme"), True),
        (Silence(id="s", ends_at=T0 + DAY, account_id="other"), False),
        (Silence(id="s", ends_at=T0 + DAY, rule="tier_changed", tier="a"), True),
        (Silence(id="s", ends_at=T0 + DAY, rule="tier_changed", tier="S"), False),
        (Silence(id="s", ends_at=T0 + DAY, owner="@dana"), True),
        (Silence(id="s", ends_at=T0 + DAY, owner="@sam"), False),
        (Silence(id="s", ends_at=T0), False),
        (Silence(id="s", ends_at=T0 + DAY, starts_at=T0 + timedelta(hours=1)), False),
    ],
)
def test_silences_match_like_alertmanager(silence: Silence, muted: bool) -> None:
    labels = Labels(
        account_id="acme",
        rule="tier_changed",
        tier="A",
        owner_email="dana@vendor.example",
        owner_slack="@dana",
    )

    assert silenced([silence], labels, T0) is muted


# --- sharp drop -------------------------------------------------------------------------


def test_a_sharp_drop_within_the_window_opens_and_recovery_resolves() -> None:
    run = Run(rule("sharp_health_drop"))
    start = enriched_change(health_score=80, drivers=[driver("engagement", -14)])
    steps = [
        start,
        later(start, 2 * DAY, health_score=72),
        later(start, 4 * DAY, health_score=64, drivers=[driver("engagement", -8)]),
        later(start, 5 * DAY, health_score=69),  # drop 11: inside the hysteresis band
        later(start, 6 * DAY, health_score=75),  # drop 5: cleared
    ]

    results = [run.feed(change) for change in steps]

    assert [kinds(r) for r in results] == [[], [], [("opened", True)], [], [("resolved", True)]]
    opened = results[2][0]
    assert opened.summary == "Health fell 16 points in 4d: 80 -> 64"
    assert drivers_of(opened)[0]["component"] == "engagement"


def test_a_slow_decline_is_not_a_sharp_drop() -> None:
    run = Run(rule("sharp_health_drop"))
    start = enriched_change(health_score=80)
    decline = [later(start, n * 3 * DAY, health_score=80 - 5 * n) for n in range(1, 6)]

    assert [d for change in [start, *decline] for d in run.feed(change)] == []


def test_a_sharp_drop_opens_only_when_it_ends_in_one_of_the_rules_bands() -> None:
    run = Run(rule("sharp_health_drop", bands=["yellow", "red"]))
    start = enriched_change(health_score=98)
    steps = [
        start,
        later(start, 2 * DAY, health_score=72),  # 26 points down, still green: fine
        later(start, 3 * DAY, health_score=71),
        later(start, 4 * DAY, health_score=66),  # yellow now
    ]

    results = [run.feed(change) for change in steps]

    assert [kinds(r) for r in results] == [[], [], [], [("opened", True)]]
    assert results[3][0].summary == "Health fell 32 points in 4d: 98 -> 66"


def test_an_open_drop_resolves_once_health_is_back_in_a_band_outside_the_rules() -> None:
    run = Run(rule("sharp_health_drop", bands=["yellow", "red"]))
    start = enriched_change(health_score=98)
    run.feed(start)
    opened = run.feed(later(start, 3 * DAY, health_score=66))
    back = later(start, 5 * DAY, health_score=78)  # still 20 down, but green

    assert kinds(opened) == [("opened", True)]
    (resolved,) = run.feed(back)
    assert (resolved.transition, resolved.summary) == (
        Transition.resolved,
        "Health back to green at 78",
    )


def test_history_keeps_only_the_window() -> None:
    start = enriched_change(health_score=80)
    history: HealthHistory = [(T0 - 10 * DAY, 90), (T0 - 2 * DAY, 85)]

    assert remember_health(history, start, 7 * DAY) == [(T0 - 2 * DAY, 85), (T0, 80)]
    assert remember_health(history, start, timedelta(0)) == []


# --- tier -------------------------------------------------------------------------------


def test_a_tier_change_says_which_way_and_the_value_behind_it() -> None:
    run = Run(rule("tier_changed"))
    first = enriched_change(tier=Tier.A, value_score=62)
    up = later(first, DAY, tier=Tier.S, value_score=81)

    assert run.feed(first) == []
    (decision,) = run.feed(up)

    assert decision.summary == (
        "Tier A -> S (up): revenue contribution (MRR 2,500 EUR) now among the top accounts"
        " that bring S's share of revenue; value score 62 -> 81 (+19)"
    )
    assert decision.details["direction"] == "up"
    assert decision.alert.severity == "up"


def test_each_tier_change_is_a_new_episode_and_old_ones_expire_quietly() -> None:
    run = Run(rule("tier_changed"))
    first = enriched_change(tier=Tier.A)
    down = later(first, DAY, tier=Tier.B)
    down_again = later(down, DAY, tier=Tier.C)
    unchanged = later(down_again, 8 * DAY, tier=Tier.C)

    run.feed(first)
    run.feed(down)
    again = run.feed(down_again)
    expired = run.feed(unchanged)

    assert kinds(again) == [("resolved", False), ("opened", True)]
    assert again[1].alert.episode == 2
    assert kinds(expired) == [("resolved", False)]


def test_directions_filter_and_overrides_are_not_alerted() -> None:
    first = enriched_change(tier=Tier.A)

    assert Run(rule("tier_changed", directions=["down"])).feed(later(first, DAY, tier=Tier.S)) == []
    by_csm = later(first, DAY, tier=Tier.C, trigger=Trigger.override)
    assert Run(rule("tier_changed")).feed(by_csm) == []


# --- silence -----------------------------------------------------------------------------


def test_a_paying_account_silent_for_the_days_opens_and_usage_resolves() -> None:
    run = Run(rule("account_silent", days=14))
    used = T0
    quiet = enriched_change(computed_at=T0 + 13 * DAY, account=facts(last_usage_at=used))
    silent = later(quiet, DAY, account=facts(last_usage_at=used))
    back = later(silent, DAY, account=facts(last_usage_at=T0 + 15 * DAY))

    assert run.feed(quiet) == []
    (opened,) = run.feed(silent)
    (resolved,) = run.feed(back)

    assert opened.summary == "Paying account silent for 14 days (last usage 2026-11-01)"
    assert resolved.transition is Transition.resolved


@pytest.mark.parametrize("paying", [False, None])
def test_silence_of_a_non_paying_account_is_no_alert(paying: bool | None) -> None:
    change = enriched_change(computed_at=T0 + 30 * DAY, account=facts(paying=paying))

    assert Run(rule("account_silent")).feed(change) == []


# --- renewal ------------------------------------------------------------------------------


def test_a_renewal_near_with_poor_health_opens_and_good_health_resolves() -> None:
    run = Run(rule("renewal_at_risk", days=60, resolve_at_health=75))
    renewal = facts(renewal_date=date(2026, 12, 1))
    yellow = enriched_change(health_score=55, account=renewal, stage=Stage.renewal_window)
    green_edge = later(yellow, DAY, health_score=71, account=renewal)
    green = later(yellow, 2 * DAY, health_score=78, account=renewal)

    (opened,) = run.feed(yellow)
    assert opened.summary == "Renewal in 30 days (2026-12-01) with health 55 (yellow)"
    assert run.feed(green_edge) == []  # hysteresis: green but below 75
    assert kinds(run.feed(green)) == [("resolved", True)]


def test_a_period_end_outside_the_scorecards_renewal_window_is_no_alert() -> None:
    """A monthly plan's period ends within days, but no contract renews: the scorecard
    (renewal_min_term_months) keeps such accounts out of the renewal window stage."""
    monthly = enriched_change(
        health_score=30, account=facts(renewal_date=date(2026, 11, 20)), stage=Stage.steady
    )

    assert Run(rule("renewal_at_risk")).feed(monthly) == []


def test_a_cancellation_resolves_what_it_makes_moot_without_a_notice() -> None:
    run = Run(rule("churn_risk_raised"), rule("renewal_at_risk"))
    account = facts(renewal_date=date(2026, 11, 20))
    falling = enriched_change(
        health_score=30, risk=Risk.high, account=account, stage=Stage.renewal_window
    )
    cancelled = later(falling, DAY, health_score=0, risk=Risk.high, stage=Stage.churned)

    assert kinds(run.feed(falling)) == [("opened", True), ("opened", True)]
    assert kinds(run.feed(cancelled)) == [("resolved", False), ("resolved", False)]
    assert run.feed(later(cancelled, DAY, health_score=0, stage=Stage.churned)) == []


def test_an_onboarding_account_opens_no_drop_or_silence_alert() -> None:
    run = Run(rule("sharp_health_drop"), rule("account_silent"))
    start = enriched_change(health_score=90, stage=Stage.onboarding)
    quiet = later(
        start,
        20 * DAY,
        health_score=40,
        stage=Stage.onboarding,
        account=facts(last_usage_at=T0),
    )

    run.feed(start)
    assert run.feed(quiet) == []


def test_a_far_renewal_is_no_alert() -> None:
    far = enriched_change(health_score=20, account=facts(renewal_date=date(2027, 6, 1)))

    assert Run(rule("renewal_at_risk")).feed(far) == []


# --- ids ----------------------------------------------------------------------------------


def test_ids_are_deterministic_and_distinct() -> None:
    first = alert_id("acme", "churn_risk_raised", 1)

    assert first == alert_id("acme", "churn_risk_raised", 1)
    assert len({first, alert_id("acme", "churn_risk_raised", 2), alert_id("b", "x", 1)}) == 3
    assert notice_id(first, 1, "slack") == notice_id(first, 1, "slack")
    assert notice_id(first, 1, "slack") != notice_id(first, 2, "slack")


def test_all_default_rules_together_on_a_falling_account() -> None:
    run = Run(*load_rules(TEST_RULES).enabled)
    account = facts(renewal_date=date(2026, 11, 20))
    first = enriched_change(
        health_score=82, tier=Tier.S, account=account, stage=Stage.renewal_window
    )
    fall = later(
        first,
        2 * DAY,
        health_score=38,
        risk=Risk.high,
        tier=Tier.A,
        account=account,
        stage=Stage.renewal_window,
    )

    run.feed(first)
    decisions = run.feed(fall)

    assert sorted(d.alert.rule for d in decisions) == [
        "churn_risk_raised",
        "renewal_at_risk",
        "sharp_health_drop",
        "tier_changed",
    ]
    assert all(d.alert.state is AlertState.open and d.notify for d in decisions)


def test_ordinals_follow_the_messages_then_the_decisions() -> None:
    order = [ordinal(1, 0), ordinal(1, 1), ordinal(2, 0), ordinal(2, 5000), ordinal(3, 0)]

    assert order == sorted(order) and len(set(order)) == len(order)


def test_a_tier_notice_says_why_when_the_value_score_did_not_move() -> None:
    run = Run(rule("tier_changed"))
    first = enriched_change(tier=Tier.A, value_score=83)
    up = later(first, DAY, tier=Tier.S, value_score=83)

    assert run.feed(first) == []
    (decision,) = run.feed(up)

    assert "+0" not in decision.summary
    assert decision.summary.endswith("value score 83: other accounts' revenue moved the line")
    assert decision.details["reason"] == decision.summary.split(": ", 1)[1]


def test_an_a_b_move_is_said_by_engagement() -> None:
    run = Run(rule("tier_changed"))
    first = enriched_change(tier=Tier.B, value_score=50)
    engaged = dict(first.components, engagement=64)
    up = later(first, DAY, tier=Tier.A, components=engaged)

    run.feed(first)
    (decision,) = run.feed(up)

    assert decision.summary == (
        "Tier B -> A (up): engagement 64 reached the line for A (A and B differ by engagement)"
    )
