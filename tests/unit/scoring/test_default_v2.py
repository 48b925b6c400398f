"""The shipped scorecard (default@2) and alert rules, day by day, on the cases a naive
model trips on: new accounts, dunning, expansions, holiday dips, monthly plans,
cancellations, slow declines. Each case is replayed through the backtest's replay,
which is the fold, rescore and alert rules of the services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from services.ingest.domain import Limits as IngestLimits
from services.ingest.sources.segment import mapping as segment
from services.ingest.sources.stripe.mapping import StripeAccounts, map_stripe, read_stripe_event
from services.scoring.domain import AccountState, Portfolio, rescore
from services.scoring.scorecard import feature_key
from services.scoring.settings import SHIPPED_SCORECARDS
from shared.events import Event, PaymentOutcome, SubscriptionStatus
from shared.scores import Stage, Tier
from tests.support.replays import START, replay, steady_usage
from tests.support.scoring_builders import billing, default_card, traits, usage

AT = datetime(2026, 1, 5, 10, tzinfo=UTC)


def _day(offset: int) -> date:
    return START + timedelta(days=offset)


def _at(offset: int, hour: int = 6) -> datetime:
    return datetime.combine(_day(offset), datetime.min.time(), UTC) + timedelta(hours=hour)


def _segment(*calls: dict[str, Any]) -> list[Event]:
    mapped = segment.map_messages(list(calls), {}, AT + timedelta(days=1), IngestLimits())
    return [item for item in mapped.items if isinstance(item, Event)]


def _stripe(event_type: str, obj: dict[str, Any], at: datetime) -> list[Event]:
    body = {"id": f"evt_{event_type}_{at:%j}", "type": event_type, "created": int(at.timestamp())}
    event = read_stripe_event(orjson.dumps(body | {"data": {"object": obj}}))
    intake = map_stripe(event, StripeAccounts(), None, at + timedelta(days=1), IngestLimits())
    return [item for item in intake.items if isinstance(item, Event)]


def _subscription(interval: str, period_end: date, **fields: Any) -> dict[str, Any]:
    price = {"unit_amount": 5_000, "currency": "usd", "recurring": {"interval": interval}}
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "status": "active",
        "start_date": int(_at(0).timestamp()),
        "current_period_end": int(
            datetime.combine(period_end, datetime.min.time(), UTC).timestamp()
        ),
        "metadata": {"vitals_account_id": "acme"},
        "items": {"data": [{"quantity": 10, "price": price}]},
        **fields,
    }


# --- new accounts -----------------------------------------------------------------------


def test_a_lone_group_call_or_identify_calls_give_no_score_and_no_alert() -> None:
    group = {"type": "group", "userId": "u1", "groupId": "acme", "timestamp": AT.isoformat()}
    identify = {"type": "identify", "userId": "u1", "traits": {"account_id": "acme"}}
    events = _segment(group | {"messageId": "g1"}, identify | {"messageId": "i1"})

    days = replay(events, _day(20))

    assert len(events) == 2 and set(days.scores.values()) == {None}
    assert days.notices == []


def test_stripe_alone_scores_a_new_account_green_onboarding_and_sends_nothing() -> None:
    events = _stripe("customer.subscription.created", _subscription("month", _day(31)), _at(0))

    days = replay(events, _day(25))

    first = days.on(_day(0))
    assert (first.band.value, first.risk.value, first.stage) == ("green", "low", Stage.onboarding)
    assert days.high_days() == [] and days.notices == []


def test_a_new_account_with_no_usage_yet_is_not_judged_until_onboarding_ends() -> None:
    subscribed = billing(at=_at(0), subscription_status=SubscriptionStatus.active, seats=10)

    days = replay([subscribed], _day(45))

    assert days.high_days(after=None) and min(days.high_days()) >= _day(30)
    assert days.on(_day(29)).risk.value == "low"
    assert "no usage for 14 days" in days.on(_day(31)).risk_reasons


def test_an_old_account_seen_first_without_usage_counts_its_silence_from_then() -> None:
    # Vitals going live: the subscription is a year old, no usage has been seen yet.
    subscribed = billing(
        at=_at(0), subscription_status="active", seats=10, subscription_started_on=_day(-365)
    )

    days = replay([subscribed], _day(25))

    first = days.on(_day(0))  # one day of silence is not churn
    assert first.measures["days_since_last_usage"] == 0.0 and first.band.value != "red"
    assert days.on(_day(6)).risk.value != "high"
    assert "no usage for 14 days" in days.on(_day(14)).risk_reasons
    assert days.on(_day(22)).health_score < days.on(_day(0)).health_score


# --- dunning ----------------------------------------------------------------------------------


def test_a_failed_payment_paid_within_the_grace_is_never_high_and_sends_nothing() -> None:
    usage = steady_usage(START, 120)
    failed = billing(at=_at(90), payment=PaymentOutcome.failed, subscription_status="past_due")
    paid = billing(at=_at(93), payment=PaymentOutcome.paid, subscription_status="active")

    days = replay([*usage, failed, paid], _day(110))

    assert days.on(_day(91)).risk.value == "medium"
    assert days.high_days(after=_day(60)) == []
    assert days.notices == []


def test_a_failed_payment_unpaid_past_the_grace_is_high_from_its_first_failure() -> None:
    usage = steady_usage(START, 120)
    failures = [
        billing(at=_at(day), payment=PaymentOutcome.failed, subscription_status="past_due")
        for day in (90, 93, 95)  # retries reset nothing: the grace counts from the first
    ]

    days = replay([*usage, *failures], _day(100))

    assert days.on(_day(96)).risk.value == "medium"
    assert "a failed payment unpaid for 7 days" in days.on(_day(97)).risk_reasons


# --- usage against the account's own baseline ----------------------------------------------


def test_a_slow_decline_is_high_a_month_before_it_ends() -> None:
    def falling(offset: int) -> float:  # three months from full use to a tenth
        return 1.0 if offset < 70 else max(0.1, 1 - (offset - 70) / 100)

    days = replay(steady_usage(START, 170, level=falling), _day(170))

    first_high = min(days.high_days(after=_day(70)))
    assert first_high <= _day(170 - 30)
    assert "usage over 28 days below 60% of its own baseline for 7 days" in (
        days.on(first_high).risk_reasons
    )


LAPSING_RULE = "users lapsing and usage over 14 days below 65% of its own baseline for 3 days"


def test_a_decline_in_which_users_lapse_is_high_within_four_weeks_by_the_lapsing_rule() -> None:
    def lapsing(offset: int) -> int:  # ten users, one stops every other day from day 70
        return 10 if offset < 70 else max(4, 10 - (offset - 70) // 2)

    days = replay(steady_usage(START, 110, users=10, active=lapsing), _day(110))

    first_high = min(days.high_days(after=_day(70)))
    assert first_high <= _day(70 + 28)
    assert LAPSING_RULE in days.on(first_high).risk_reasons


def test_the_same_fall_in_usage_without_users_lapsing_is_not_read_as_lapsing() -> None:
    def lapsing(offset: int) -> int:
        return 10 if offset < 70 else max(4, 10 - (offset - 70) // 2)

    def thinning(offset: int) -> float:  # every user stays, each using the product less
        return lapsing(offset) / 10

    days = replay(steady_usage(START, 110, users=10, level=thinning), _day(110))

    high = days.high_days()
    assert high, "usage at 40% of its baseline is high, by the usage rule"
    assert all(LAPSING_RULE not in days.on(day).risk_reasons for day in high)


def test_a_holiday_dip_that_recovers_is_never_high() -> None:
    def holiday(offset: int) -> float:
        return 0.25 if 80 <= offset < 92 else 1.0

    days = replay(steady_usage(START, 130, level=holiday), _day(130))

    assert days.high_days() == []


def test_a_large_and_a_small_account_falling_by_half_both_count() -> None:
    def halved(offset: int) -> float:
        return 1.0 if offset < 70 else 0.4

    large = replay(steady_usage(START, 110, users=60, level=halved), _day(110))
    small = replay(steady_usage(START, 110, users=3, per_user=4, level=halved), _day(110))

    assert large.high_days(after=_day(70)) and small.high_days(after=_day(70))


def test_an_expansion_with_seats_before_users_is_not_a_drop() -> None:
    usage = steady_usage(START, 120, users=8)
    seats = [billing(at=_at(0), seats=10), billing(at=_at(100), seats=30)]

    days = replay([*usage, *seats], _day(110))

    before, after = days.on(_day(99)), days.on(_day(105))
    assert after.components["engagement"] == before.components["engagement"]
    assert after.risk.value == "low"


def test_key_features_match_whatever_their_spelling() -> None:
    assert feature_key("Report Exported") == feature_key("report_exported") == "report.exported"
    days = replay(steady_usage(START, 40, feature="Report Exported"), _day(40))

    assert days.on(_day(40)).measures["key_feature_breadth"] == 0.25


# --- renewals and cancellations ----------------------------------------------------------------


def test_a_monthly_period_end_is_no_renewal_window_but_an_annual_one_is() -> None:
    monthly = _stripe("customer.subscription.updated", _subscription("month", _day(40)), _at(35))
    annual = _stripe("customer.subscription.updated", _subscription("year", _day(40)), _at(35))
    usage = steady_usage(START, 40)

    assert replay([*usage, *monthly], _day(36)).on(_day(36)).stage is Stage.adoption
    assert replay([*usage, *annual], _day(36)).on(_day(36)).stage is Stage.renewal_window


def test_a_cancellation_stands_down_open_alerts_without_a_notice() -> None:
    def falling(offset: int) -> float:
        return 1.0 if offset < 60 else 0.2

    usage = steady_usage(START, 110, level=falling)
    cancelled = billing(at=_at(110), subscription_status=SubscriptionStatus.canceled)
    days = replay([*usage, cancelled], _day(125))

    assert days.on(_day(110)).stage is Stage.churned
    opened = [n for n in days.notices if n[2] == "churn_risk_raised"]
    assert opened and all(day < _day(110) for day, _, _ in days.notices)


# --- tiers --------------------------------------------------------------------------------------


def test_tiers_follow_revenue_contribution_and_need_revenue() -> None:
    mrrs = [200_000, 100_000] + [3_000] * 30 + [200] * 40  # S brings 75%, C 2%
    portfolio = Portfolio.of(mrrs)
    card = default_card()

    def tier_of(mrr: int | None, seen_days: int = 40) -> Tier | None:
        state = AccountState(account_id="a")
        facts: dict[str, Any] = {"subscription_status": "active", "seats": 5}
        if mrr is not None:
            facts |= {"mrr_minor": mrr, "currency": "USD"}
        from services.scoring.domain import apply_event

        apply_event(state, billing(at=AT, **facts))
        state.first_seen = AT.date() - timedelta(days=seen_days - 1)
        result = rescore(state, AT, card, portfolio=portfolio)
        assert result.assessment is not None
        return result.assessment.tier

    assert card.ref == "default@2" and SHIPPED_SCORECARDS.is_dir()
    assert tier_of(200_000) is Tier.S and tier_of(100_000) is Tier.S
    assert tier_of(3_000) in (Tier.A, Tier.B)
    assert tier_of(3_000, seen_days=29) is None  # engagement not judged yet: A or B?
    assert tier_of(200) is Tier.C and tier_of(200, seen_days=1) is Tier.C
    assert tier_of(None) is None


def test_a_and_b_wait_for_a_whole_engagement_window_and_then_send_nothing() -> None:
    # Going live without a backfill: users each active every tenth day. In its first
    # days, users per seat over 30 days reads a third of the truth or less.
    revenue = [
        billing(account_id=account, at=_at(0), mrr_minor=mrr, currency="USD", seats=10)
        for account, mrr in (("big", 850_000), ("acme", 110_000), ("low", 110_000))
    ] + [billing(account_id="small", at=_at(0), mrr_minor=40_000, currency="USD")]
    owners = [
        traits(account_id=account, at=_at(0), owner_csm_email=f"{account}@example.com")
        for account in ("acme", "low")
    ]
    use = [
        usage(account_id=account, at=_at(day), user_id=f"u{day % 10}", event_id=f"{account}{day}")
        for account, users in (("acme", 8), ("low", 3))
        for day in range(60)
        if day % 10 < users
    ]

    engaged = replay([*revenue, *owners, *use], _day(59))
    lapsing = replay([*revenue, *owners, *use], _day(59), account_id="low")

    assert {engaged.on(_day(d)).tier for d in range(29)} == {None}  # seen for 29 days
    assert {engaged.on(_day(d)).tier for d in range(29, 60)} == {Tier.A}
    assert {lapsing.on(_day(d)).tier for d in range(29)} == {None}
    assert {lapsing.on(_day(d)).tier for d in range(29, 60)} == {Tier.B}
    assert [n for n in engaged.notices if n[2] in ("tier_changed", "sharp_health_drop")] == []
