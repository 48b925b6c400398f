"""Each default rule fires, dedupes, cools down and resolves, through real Kafka and
PostgreSQL to a real signed-webhook receiver."""

from datetime import date, timedelta

import pytest
from standardwebhooks import Webhook

from shared.scores import Risk, Tier
from tests.integration.alerts.conftest import AlertsStack, StackFactory
from tests.support.alerts_messages import driver, enriched_change, facts, later
from tests.support.alerts_receivers import HttpReceiver, Recorded
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def webhook_channels(url: str) -> dict[str, object]:
    return {"channels": [{"id": "hook", "kind": "webhook", "url": f"{url}/hook", "secret": SECRET}]}


async def _received(receiver: HttpReceiver, count: int) -> list[Recorded]:
    got = receiver.at("/hook")
    assert len(got) <= count, [(r.json()["account_id"], r.json()["rule"]) for r in got]
    return got if len(got) == count else []


def verified(request: Recorded) -> dict[str, object]:
    """The body, once its Standard Webhooks signature checks out."""
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    payload: dict[str, object] = Webhook(SECRET).verify(request.body, headers)
    return payload


async def test_churn_risk_opens_once_reminds_after_cooldown_and_resolves(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=webhook_channels(url)) as stack:
        medium = enriched_change(
            computed_at=stack.clock.now,
            account=facts(last_usage_at=stack.clock.now),
            risk=Risk.medium,
            previous_risk=Risk.low,
            risk_reasons=["active users halved"],
            drivers=[driver("engagement", -12, "active users / seats 0.6 -> 0.3, -12 points")],
        )
        await stack.send(medium, medium, later(medium, timedelta(hours=1)))
        await wait_for(lambda: _received(receiver, 1), 30, "the opened notice")

        stack.clock.advance(timedelta(hours=25))
        await stack.send(later(medium, timedelta(hours=25), sequence=3))
        await wait_for(lambda: _received(receiver, 2), 30, "the reminder after the cooldown")
        await stack.send(later(medium, timedelta(hours=26), sequence=4, risk=Risk.low))
        requests = await wait_for(lambda: _received(receiver, 3), 30, "the resolved notice")
        (alert,) = await stack.alerts(account_id="acme")
        metrics = await wait_for(lambda: _metrics_settled(stack), 30, "the outbox gauges")

    bodies = [verified(r) for r in requests]
    assert [b["type"] for b in bodies] == ["alert.opened", "alert.reminded", "alert.resolved"]
    assert bodies[0]["summary"] == "Churn risk low -> medium: active users halved"
    assert bodies[0]["details"]["drivers"][0]["component"] == "engagement"  # type: ignore[index]
    assert len({r.headers["webhook-id"] for r in requests}) == 3
    assert {b["alert_id"] for b in bodies} == {alert["id"]}
    assert (alert["state"], alert["notifications"]) == ("resolved", 3)
    for line in (
        'vitals_alerts_opened_total{rule="churn_risk_raised",tier="A"}',
        'vitals_alerts_resolved_total{rule="churn_risk_raised",tier="A"}',
        'vitals_alerts_deliveries_total{channel="hook",outcome="delivered"}',
        'vitals_alerts_score_to_delivery_seconds_count{kind="webhook"}',
    ):
        assert line in metrics
    assert "vitals_alerts_outbox_pending 0.0" in metrics
    assert "vitals_alerts_outbox_oldest_age_seconds 0.0" in metrics


async def _metrics_settled(stack: AlertsStack) -> str | None:
    text = (await stack.api.get("/metrics")).text
    return text if "vitals_alerts_outbox_pending 0.0" in text else None


async def test_every_other_default_rule_fires_for_its_account(alerts_stack: StackFactory) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=webhook_channels(url)) as stack:
        now = stack.clock.now
        used = facts(last_usage_at=now)
        dropping = enriched_change(
            account_id="drop", health_score=85, computed_at=now - timedelta(days=3), account=used
        )
        tiered = enriched_change(
            account_id="tier", tier=Tier.A, value_score=60, computed_at=now, account=used
        )
        silent = enriched_change(
            account_id="silent",
            computed_at=now,
            account=facts(last_usage_at=now - timedelta(days=20)),
        )
        renewing = enriched_change(
            account_id="renew",
            health_score=50,
            computed_at=now,
            account=facts(last_usage_at=now, renewal_date=(now + timedelta(days=20)).date()),
        )
        await stack.send(
            dropping,
            later(dropping, timedelta(days=3), health_score=60),
            tiered,
            later(tiered, timedelta(hours=1), tier=Tier.S, value_score=85),
            silent,
            renewing,
        )
        requests = await wait_for(lambda: _received(receiver, 4), 30, "four alerts")

    summaries = {b["account_id"]: b["summary"] for b in map(verified, requests)}
    assert summaries == {
        "drop": "Health fell 25 points in 3d: 85 -> 60",
        "tier": "Tier A -> S (up), value 60 -> 85 (+25)",
        "silent": "Paying account silent for 20 days (last usage 2026-11-02)",
        "renew": f"Renewal in 20 days ({date(2026, 12, 12)}) with health 50 (yellow)",
    }
