"""Keyword-only builders of enriched score changes for the alerts tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.alerts.documents import JsonObject
from services.alerts.rules.engine import Alert, AlertState, Decision, Transition
from shared.scores import AccountFacts, Band, Driver, Risk, ScoreChange, Stage, Tier, Trigger
from tests.support.events import T0

# The rules the alerts tests were written for (risk from medium, daily reminders).
TEST_RULES = Path(__file__).parents[2] / "services/alerts/rules/previous/default-v1.yaml"


def band_of(health: int) -> Band:
    return Band.green if health >= 70 else Band.yellow if health >= 40 else Band.red


def facts(
    *,
    name: str | None = "Acme Corp",
    segment: str | None = "enterprise",
    owner_csm_email: str | None = "dana@vendor.example",
    owner_csm_slack: str | None = "@dana",
    mrr_minor: int | None = 250_000,
    currency: str | None = "EUR",
    renewal_date: date | None = None,
    last_usage_at: datetime | None = T0,
    paying: bool | None = True,
    **more: Any,
) -> AccountFacts:
    return AccountFacts(
        name=name,
        segment=segment,
        owner_csm_email=owner_csm_email,
        owner_csm_slack=owner_csm_slack,
        mrr_minor=mrr_minor,
        currency=currency,
        renewal_date=renewal_date,
        last_usage_at=last_usage_at,
        paying=paying,
        **more,
    )


def driver(component: str = "engagement", points: float = -9.0, text: str = "") -> Driver:
    return Driver(
        component=component, points=points, text=text or f"{component} {points:+g} points"
    )


def enriched_change(
    *,
    account_id: str = "acme",
    sequence: int = 1,
    health_score: int = 80,
    previous_score: int | None = None,
    computed_at: datetime = T0,
    risk: Risk | None = Risk.low,
    previous_risk: Risk | None = None,
    risk_reasons: list[str] | None = None,
    tier: Tier | None = Tier.A,
    previous_tier: Tier | None = None,
    value_score: int | None = 60,
    previous_value_score: int | None = None,
    stage: Stage | None = Stage.steady,
    drivers: list[Driver] | None = None,
    trigger: Trigger | None = Trigger.events,
    account: AccountFacts | None = None,
    **more: Any,
) -> ScoreChange:
    return ScoreChange(
        account_id=account_id,
        sequence=sequence,
        health_score=health_score,
        band=more.pop("band", band_of(health_score)),
        previous_score=previous_score,
        components={"engagement": health_score, "recency": health_score},
        computed_at=computed_at,
        risk=risk,
        previous_risk=previous_risk,
        risk_reasons=risk_reasons or [],
        tier=tier,
        previous_tier=previous_tier,
        value_score=value_score,
        previous_value_score=previous_value_score,
        stage=stage,
        drivers=drivers or [],
        trigger=trigger,
        account=account or facts(last_usage_at=computed_at),  # in use: silence is opt-in
        **more,
    )


def later(change: ScoreChange, delta: timedelta, **fields: Any) -> ScoreChange:
    """The next message of the same account, ``delta`` after ``change``."""
    values: dict[str, Any] = {
        "sequence": change.sequence + 1,
        "computed_at": change.computed_at + delta,
        "previous_score": change.health_score,
        "previous_risk": change.risk,
        "previous_tier": change.tier,
        "previous_value_score": change.value_score,
        **fields,
    }
    if "health_score" in fields and "band" not in fields:
        values["band"] = band_of(fields["health_score"])
    return change.model_copy(update=values)


def opened(
    summary: str,
    details: JsonObject,
    *,
    account_id: str = "acme",
    episode: int = 1,
) -> Decision:
    """The decision that opens a churn-risk alert, with its first notice."""
    alert = Alert(
        id="a-1",
        account_id=account_id,
        rule="churn_risk_raised",
        episode=episode,
        state=AlertState.open,
        severity="high",
        opened_at=T0,
        notifications=1,
    )
    return Decision(Transition.opened, alert, True, summary, details)
