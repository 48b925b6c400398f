"""Each default rule fires, dedupes, cools down and resolves, through real Kafka and
PostgreSQL to a real signed-webhook receiver."""

from datetime import date, timedelta

import pytest
from standardwebhooks import Webhook

from shared.scores import Risk, ScoreChange, Stage, Tier
from tests.integration.alerts.conftest import AlertsStack, StackFactory
from tests.support.alerts_messages import driver, enriched_change, facts, later
from tests.support.alerts_receivers import HttpReceiver, Recorded
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DAYS_20 = timedelta(days=20)


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
            stage=Stage.renewal_window,
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
        "tier": (
            "Tier A -> S (up): revenue contribution (MRR 2,500 EUR) now among the top"
            " accounts that bring S's share of revenue; value score 60 -> 85 (+25)"
        ),
        "silent": "Paying account silent for 20 days (last usage 2026-11-02)",
        "renew": f"Renewal in 20 days ({date(2026, 12, 12)}) with health 50 (yellow)",
    }


async def _phase(stack: AlertsStack, *changes: ScoreChange) -> None:
    """Send ``changes`` and wait until all are applied, before the clock moves on."""
    await stack.send(*changes)
    last = {c.account_id: c.sequence for c in changes}
    await wait_for(lambda: stack.applied(last), 30, f"messages applied: {last}")


async def test_every_other_rule_dedupes_reminds_after_its_cooldown_and_resolves(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=webhook_channels(url)) as stack:
        t0, clock = stack.clock.now, stack.clock
        used = facts(last_usage_at=t0)
        peak = enriched_change(
            account_id="drop", health_score=85, computed_at=t0 - timedelta(days=3), account=used
        )
        dropped = later(peak, timedelta(days=3), health_score=60)
        silent = enriched_change(
            account_id="silent", computed_at=t0, account=facts(last_usage_at=t0 - DAYS_20)
        )
        renewal = facts(last_usage_at=t0, renewal_date=(t0 + timedelta(days=30)).date())
        renewing = enriched_change(
            account_id="renew",
            health_score=50,
            computed_at=t0,
            account=renewal,
            stage=Stage.renewal_window,
        )
        tier = enriched_change(account_id="tier", tier=Tier.A, computed_at=t0, account=used)
        tier_up = later(tier, timedelta(minutes=1), tier=Tier.S, value_score=85)
        hour = timedelta(hours=1)
        # Opened once each; the repeats (same message, or still firing) change nothing.
        await _phase(
            stack,
            peak, dropped, dropped, later(dropped, hour, health_score=62),
            silent, silent, later(silent, hour),
            renewing, renewing, later(renewing, hour),
            tier, tier_up, tier_up, later(tier_up, hour),
        )  # fmt: skip
        await wait_for(lambda: _received(receiver, 4), 30, "four opened notices")

        clock.advance(timedelta(hours=25))  # past the drop's 24h cooldown only
        day = timedelta(hours=25)
        still_dropped = later(dropped, day, sequence=4, health_score=61)
        await _phase(
            stack,
            still_dropped, later(still_dropped, hour, health_score=80),
            later(silent, day, sequence=3),
            later(renewing, day, sequence=3),
            later(tier_up, day, sequence=4, tier=Tier.A, value_score=55),
        )  # fmt: skip
        await wait_for(lambda: _received(receiver, 7), 30, "reminder, resolution, tier down")

        clock.advance(timedelta(days=7))  # past silence's 72h and renewal's 7d cooldowns
        week = timedelta(days=8)
        still_silent = later(silent, week, sequence=4)
        still_renewing = later(renewing, week, sequence=4)
        await _phase(
            stack,
            still_silent,
            later(still_silent, hour, account=facts(last_usage_at=t0 + week)),
            still_renewing, later(still_renewing, hour, health_score=80),
        )  # fmt: skip
        requests = await wait_for(lambda: _received(receiver, 11), 30, "eleven notices")

    told: dict[str, list[str]] = {}
    for body in map(verified, requests):
        told.setdefault(str(body["account_id"]), []).append(f"{body['type']} {body['episode']}")
    assert told == {
        "drop": ["alert.opened 1", "alert.reminded 1", "alert.resolved 1"],
        "silent": ["alert.opened 1", "alert.reminded 1", "alert.resolved 1"],
        "renew": ["alert.opened 1", "alert.reminded 1", "alert.resolved 1"],
        "tier": ["alert.opened 1", "alert.opened 2"],  # each change its own episode
    }
    assert len({r.headers["webhook-id"] for r in requests}) == 11
