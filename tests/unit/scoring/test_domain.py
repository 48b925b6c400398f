import re
from datetime import timedelta
from typing import Any

import pytest

from services.scoring.domain import (
    AccountState,
    ApplyResult,
    Limits,
    Override,
    Portfolio,
    apply_event,
    apply_events,
    rescore,
)
from services.scoring.domain.rescore import closing_tier
from services.scoring.domain.signals import Signals
from services.scoring.domain.value import tier_of
from shared.events import Event, PaymentOutcome, SubscriptionStatus
from shared.scores import Band, Risk, Stage, Tier, Trigger
from tests.support.scoring_builders import (
    NOW,
    billing,
    day,
    default_scorecards,
    traits,
    usage,
    v1_card,
)

CARD = v1_card()  # the behaviours below are version 1's; version 2 has its own tests
WEEK = timedelta(days=7)


def _state(*events: Event, limits: Limits | None = None) -> AccountState:
    state = AccountState(account_id="acme")
    apply_events(state, events, limits or Limits())
    return state


def _healthy(seats: int = 2, **facts: Any) -> AccountState:
    users = [usage(user_id=f"u{i}", feature="report.exported") for i in range(seats)]
    return _state(
        billing(seats=seats, mrr_minor=100_000, subscription_status="active", **facts), *users
    )


def test_a_fully_used_paid_account_is_green_low_risk_and_explained_from_zero() -> None:
    state = _healthy()

    result = rescore(state, NOW, CARD)

    change = result.change
    assert change is not None
    assert (change.health_score, change.band, change.risk) == (90, Band.green, Risk.low)
    assert change.components["engagement"] == 100
    assert change.components["adoption"] == 33
    assert change.scorecard == "default@1" and change.trigger is Trigger.events
    assert sum(d.points for d in change.drivers) == pytest.approx(90)
    assert change.sequence == 1 and change.previous_score is None
    assert change.account.paying is True and change.account.seats == 2


def test_a_driver_says_which_measure_moved_and_by_how_many_points() -> None:
    state = _state(billing(seats=5, subscription_status="active"))
    apply_events(state, [usage(user_id=f"u{i}") for i in range(4)], Limits())
    first = rescore(state, NOW, CARD).change
    apply_event(state, billing(seats=10, at=NOW + timedelta(minutes=1)))

    change = rescore(state, NOW + timedelta(minutes=1), CARD).change

    assert first is not None and change is not None
    (driver,) = change.drivers
    assert driver.text == "active users / seats 0.8 -> 0.4, -15 points"
    assert (driver.component, driver.measure_before, driver.measure_after) == (
        "engagement",
        0.8,
        0.4,
    )
    assert change.health_score - first.health_score == -15
    assert change.previous_score == first.health_score


def test_an_event_seen_before_is_applied_once() -> None:
    state = _state()
    event = usage()

    assert apply_event(state, event) is ApplyResult.applied
    assert apply_event(state, event) is ApplyResult.duplicate
    assert state.events_applied == 1
    assert state.usage[NOW.date()].events == 1


def test_events_older_than_the_lateness_bound_are_too_late() -> None:
    state = _state(usage(at=NOW))

    late = apply_event(state, usage(at=NOW - timedelta(days=7, seconds=1)))
    just_in = apply_event(state, usage(at=NOW - timedelta(days=7)))

    assert (late, just_in) == (ApplyResult.too_late, ApplyResult.applied)
    assert state.events_applied == 2


def test_a_future_dated_event_cannot_push_the_watermark_past_its_receipt() -> None:
    state = _state(usage(at=NOW + timedelta(days=30), received_at=NOW))

    assert apply_event(state, usage(at=NOW - timedelta(days=6))) is ApplyResult.applied
    assert state.watermark == NOW


def test_remembered_ids_stop_at_the_lateness_bound_and_dedupe_stays_exact() -> None:
    state = _state()
    old = usage(at=NOW)
    apply_event(state, old)
    apply_event(state, usage(at=NOW + timedelta(days=8)))

    assert NOW.date() not in state.seen_ids
    assert apply_event(state, old) is ApplyResult.too_late


def test_billing_facts_are_the_latest_by_event_time_not_by_arrival() -> None:
    newer = billing(at=NOW, seats=20, subscription_status="active")
    older = billing(at=NOW - timedelta(hours=1), seats=5, subscription_status="past_due")

    state = _state(newer, older)

    assert state.seats == 20
    assert state.status is SubscriptionStatus.active


def test_past_the_exact_limit_active_users_come_from_a_sketch_within_its_error() -> None:
    limits = Limits(exact_users_max=100)
    state = _state(billing(seats=5000), limits=limits)
    apply_events(
        state,
        [usage(user_id=f"user-{i}", at=NOW - timedelta(hours=i % 48)) for i in range(3000)],
        limits,
    )

    restored = AccountState.model_validate(state.model_dump(mode="json"))

    assert state.users.estimated
    assert restored.users.count(day(-30), day(0)) == pytest.approx(3000, rel=0.05)
    assert restored.users.count(day(-30), day(0)) == state.users.count(day(-30), day(0))


def test_a_canceled_subscription_caps_the_score_at_zero_and_says_so() -> None:
    state = _healthy()
    rescore(state, NOW, CARD)
    apply_event(state, billing(subscription_status="canceled", at=NOW + timedelta(minutes=1)))

    change = rescore(state, NOW + timedelta(minutes=1), CARD).change

    assert change is not None
    assert (change.health_score, change.band, change.stage) == (0, Band.red, Stage.churned)
    assert any(d.component == "cap" for d in change.drivers)
    assert sum(d.points for d in change.drivers) == pytest.approx(-90)


def test_missing_data_is_redistributed_or_counted_as_zero_per_measure() -> None:
    state = _state(billing(subscription_status="active"))

    change = rescore(state, NOW, CARD).change

    # no seats and no usage: engagement, trend and adoption share their weight away;
    # recency counts as zero (missing: zero), billing is full.
    assert change is not None
    assert change.components == {"recency": 0, "billing": 100}
    assert change.health_score == round(100 * 0.2 / 0.4)


def test_silence_failed_payments_and_cancellations_raise_churn_risk_with_reasons() -> None:
    state = _healthy()
    rescore(state, NOW, CARD)
    apply_event(state, billing(at=NOW, payment=PaymentOutcome.failed, invoice_due_on=day(-3)))
    apply_event(state, billing(at=NOW, cancel_at_period_end=True, renewal_date=day(200)))

    result = rescore(state, NOW + timedelta(days=15), CARD)

    change = result.change
    assert change is not None and change.risk is Risk.high
    assert {
        "no usage for 14 days",
        "a failed payment is unresolved",
        "cancellation scheduled",
    } <= set(change.risk_reasons)
    assert result.assessment is not None
    assert result.assessment.measures["days_past_due"] == 18


def test_a_sharp_drop_within_a_week_is_a_high_risk() -> None:
    state = _healthy(seats=10)
    apply_events(state, [usage(user_id=f"x{i}") for i in range(10)], Limits())
    rescore(state, NOW, CARD)
    apply_event(state, billing(seats=100, at=NOW + timedelta(days=1)))

    change = rescore(state, NOW + timedelta(days=1), CARD).change

    assert change is not None
    assert "health dropped 15 points or more within 7 days" in change.risk_reasons
    assert change.trend_7d is None


def test_a_drop_is_measured_from_earlier_days_closes_never_from_earlier_today() -> None:
    """Which scores were computed during a day depends on where event batches ended."""
    today = NOW + timedelta(days=1)
    rescored_during_the_day, not_rescored, new_account = (_healthy(seats=10) for _ in range(3))
    for state in (rescored_during_the_day, not_rescored, new_account):
        apply_events(state, [usage(user_id=f"x{i}") for i in range(10)], Limits())
    for state in (rescored_during_the_day, not_rescored):
        rescore(state, NOW, CARD)  # the day before closes near 100
    rescore(rescored_during_the_day, today, CARD)
    rescore(new_account, today, CARD)

    after_the_drop = []
    for state in (rescored_during_the_day, not_rescored, new_account):
        apply_event(state, billing(seats=100, at=today + timedelta(minutes=30)))
        after_the_drop.append(rescore(state, today + timedelta(hours=1), CARD).assessment)
    during, without, first_day = after_the_drop

    assert during is not None and during == without
    assert "health dropped 15 points or more within 7 days" in during.risk_reasons
    assert first_day is not None
    assert first_day.risk_reasons == ["health band is yellow"]  # no earlier day to drop from


def test_tier_hysteresis_starts_from_the_close_of_the_day_before() -> None:
    state = AccountState(account_id="acme")
    today = NOW.date()
    state.daily_tiers = {day(-3): Tier.S, day(-1): Tier.A, today: Tier.S}

    assert closing_tier(state, today) is Tier.A
    assert closing_tier(state, day(-2)) is Tier.S
    assert closing_tier(state, day(-3)) is None


def test_a_state_stored_without_day_closes_starts_from_its_last_tier_of_an_earlier_day() -> None:
    yesterday, today = _healthy(), _healthy()
    rescore(yesterday, NOW - timedelta(days=1), CARD)
    rescore(today, NOW, CARD)
    for state in (yesterday, today):
        assert state.last is not None and state.last.tier is not None
        state.daily_tiers = {}

    assert closing_tier(yesterday, NOW.date()) is yesterday.last.tier  # type: ignore[union-attr]
    assert closing_tier(today, NOW.date()) is None


def test_after_a_long_pause_the_last_close_still_anchors_the_tier_all_day() -> None:
    state = _healthy()
    rescore(state, NOW, CARD)
    first = state.daily_tiers[NOW.date()]
    months_later = NOW + timedelta(days=90)

    rescore(state, months_later, CARD)
    rescore(state, months_later + timedelta(hours=1), CARD)

    assert closing_tier(state, months_later.date()) is first


def test_trends_compare_with_the_score_7_and_30_days_ago() -> None:
    state = _healthy()
    scores = {}
    for offset in range(0, 31):
        rescore(state, NOW + timedelta(days=offset), CARD)
        scores[offset] = state.daily_scores[day(offset)]
    apply_event(state, usage(at=NOW + timedelta(days=31)))

    change = rescore(state, NOW + timedelta(days=31), CARD).change

    assert change is not None
    assert change.trend_7d == change.health_score - scores[24]
    assert change.trend_30d == change.health_score - scores[1]


def test_nothing_material_means_no_change_and_no_sequence() -> None:
    state = _healthy()
    rescore(state, NOW, CARD)

    again = rescore(state, NOW + timedelta(minutes=5), CARD)

    assert again.change is None and again.assessment is not None
    assert state.sequence == 1


def test_stale_inputs_are_marked_not_silently_healthy() -> None:
    state = _healthy()

    fresh = rescore(state, NOW + timedelta(days=6), CARD).assessment
    stale = rescore(state, NOW + timedelta(days=8), CARD).assessment

    assert fresh is not None and stale is not None
    assert (fresh.stale, stale.stale) == (False, True)


@pytest.mark.parametrize(
    ("facts", "offset", "stage"),
    [
        ({"subscription_started_on": day(-10)}, 0, Stage.onboarding),
        ({"subscription_started_on": day(-40)}, 0, Stage.adoption),
        ({"subscription_started_on": day(-400)}, 0, Stage.steady),
        ({"subscription_started_on": day(-400), "renewal_date": day(30)}, 0, Stage.renewal_window),
        ({"subscription_status": "canceled"}, 0, Stage.churned),
        ({"cancel_at_period_end": True, "renewal_date": day(2)}, 5, Stage.churned),
    ],
)
def test_lifecycle_stages(facts: dict[str, Any], offset: int, stage: Stage) -> None:
    state = _state(billing(**facts), usage())

    result = rescore(state, NOW + timedelta(days=offset), CARD)

    assert result.assessment is not None and result.assessment.stage is stage


def test_value_uses_the_portfolio_rank_and_tiers_split_a_from_b_by_engagement() -> None:
    portfolio = Portfolio(tuple(range(1_000, 101_000, 1_000)))

    def tier(mrr: int, seats: int, users: int) -> tuple[Tier | None, int | None]:
        state = _state(billing(seats=seats, mrr_minor=mrr, subscription_status="active"))
        apply_events(state, [usage(user_id=f"u{i}") for i in range(users)], Limits())
        change = rescore(state, NOW, CARD, portfolio=portfolio).change
        assert change is not None
        return change.tier, change.value_score

    top, engaged, weak, small = (
        tier(100_000, 2, 2),
        tier(60_000, 2, 2),
        tier(60_000, 50, 1),
        tier(2_000, 50, 1),
    )

    assert top == (Tier.S, 100)
    assert engaged[0] is Tier.A and weak[0] is Tier.B
    assert small[0] is Tier.C
    assert (weak[1] or 0) < (engaged[1] or 0)


def test_tier_hysteresis_keeps_an_account_on_a_boundary_from_flapping() -> None:
    tiers = CARD.value.tiers  # S at 80, hysteresis 5

    assert tier_of(81, 100, None, tiers) is Tier.S
    assert tier_of(77, 100, Tier.S, tiers) is Tier.S
    assert tier_of(74, 100, Tier.S, tiers) is Tier.A
    assert tier_of(83, 100, Tier.A, tiers) is Tier.A
    assert tier_of(85, 100, Tier.A, tiers) is Tier.S
    assert tier_of(60, 57, Tier.A, tiers) is Tier.A
    assert tier_of(60, 54, Tier.A, tiers) is Tier.B
    assert tier_of(60, 62, Tier.B, tiers) is Tier.B
    assert tier_of(42, 100, Tier.A, tiers) is Tier.A
    assert tier_of(39, 100, Tier.A, tiers) is Tier.C


def test_an_override_sets_the_effective_band_until_it_lapses() -> None:
    state = _healthy()
    rescore(state, NOW, CARD)
    override = Override(id="o1", field="band", value="red", expires_at=NOW + WEEK)

    during = rescore(
        state, NOW + timedelta(hours=1), CARD, overrides=[override], trigger=Trigger.override
    )
    after = rescore(state, NOW + WEEK, CARD, overrides=[override])

    assert during.change is not None and after.change is not None
    assert (during.change.band, during.change.overridden) == (Band.red, ["band"])
    assert during.assessment is not None and during.assessment.band is Band.green
    assert during.change.risk is Risk.high  # risk reads the effective band
    assert after.lapsed == ["o1"]
    assert after.change.band is not Band.red and after.change.overridden == []


def test_traits_and_billing_become_account_facts() -> None:
    state = _state(
        traits(name="Acme", owner_csm_email="csm@example.com", segment="smb"),
        billing(mrr_minor=0, plan="free", subscription_status="active"),
        usage(),
    )

    change = rescore(state, NOW, CARD).change

    assert change is not None
    facts = change.account
    assert (facts.name, facts.segment, facts.plan, facts.owner_csm_email) == (
        "Acme",
        "smb",
        "free",
        "csm@example.com",
    )
    assert facts.paying is False


def test_state_survives_a_json_round_trip() -> None:
    state = _healthy()
    apply_event(state, billing(payment=PaymentOutcome.failed, mrr_minor=90_000))
    rescore(state, NOW, CARD)

    restored = AccountState.model_validate(state.model_dump(mode="json"))

    assert restored == state


def test_driver_text_reads_like_the_issue_example() -> None:
    change = rescore(_healthy(), NOW, CARD).change

    assert change is not None
    assert all(re.fullmatch(r".+ \S+ -> \S+, [+-][\d.]+ points", d.text) for d in change.drivers)


def test_key_feature_breadth_counts_a_use_in_the_window_when_a_later_one_is_past_the_moment() -> (
    None
):
    """Events stamped minutes after the moment scored (a sender's clock ahead) neither
    count nor hide the feature's earlier use in the window."""
    moment = NOW.replace(hour=23, minute=58)
    tomorrow = moment + timedelta(minutes=4)
    state = _state(
        usage(at=NOW - timedelta(days=3), feature="report.exported"),
        usage(at=tomorrow, feature="integration.connected"),
        usage(at=NOW - timedelta(days=2), feature="integration.connected"),
        usage(at=tomorrow, feature="dashboard.shared"),
    )

    breadth = Signals(state, moment, CARD).key_feature_breadth(30)

    assert breadth == 0.5  # report.exported and integration.connected of v1's four


def test_silence_counts_from_first_seen_and_is_never_negative() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, billing(at=NOW, subscription_status="active"))
    card = default_scorecards().default

    state.first_seen = NOW.date() + timedelta(days=1)  # an event stamped a little ahead
    assert Signals(state, NOW, card).silent_days() == 0.0
    state.first_seen = NOW.date() - timedelta(days=9)
    assert Signals(state, NOW, card).silent_days() == 9.0
