"""The alerts list apart from snoozed alerts, and with them only, on PostgreSQL: a
snoozed alert is out of ``snoozed=false`` until its snooze ends, then back by itself;
each alert carries the account's name and MRR from its last score change."""

from datetime import timedelta

import pytest

from shared.scores import Risk
from tests.integration.alerts.conftest import AlertsStack, StackFactory
from tests.support.alerts_messages import enriched_change, facts
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _ids(stack: AlertsStack, **params: str) -> list[str]:
    found = await stack.alerts(state="open", rule="churn_risk_raised", **params)
    return sorted(a["account_id"] for a in found)


async def test_a_snoozed_alert_is_listed_apart_until_it_wakes(alerts_stack: StackFactory) -> None:
    async with alerts_stack() as stack:
        changes = [
            enriched_change(
                account_id=account,
                risk=Risk.high,
                computed_at=stack.clock.now,
                account=facts(
                    name=f"{account} Inc",
                    mrr_minor=123_400,
                    currency="usd",
                    last_usage_at=stack.clock.now,
                ),
            )
            for account in ("calm", "dozy")
        ]
        await stack.send(*changes)
        opened = await wait_for(lambda: _two(stack), 30, "both accounts' alerts")
        dozy = next(a for a in opened if a["account_id"] == "dozy")
        snoozed = await stack.api.post(f"/v1/alerts/{dozy['id']}/snooze", json={"for": "4h"})
        assert snoozed.status_code == 200, snoozed.text

        awake_now = await _ids(stack, snoozed="false")
        asleep_now = await _ids(stack, snoozed="true")
        everything = await _ids(stack)
        stack.clock.advance(timedelta(hours=4, seconds=1))
        awake_later = await _ids(stack, snoozed="false")
        asleep_later = await _ids(stack, snoozed="true")

    assert (awake_now, asleep_now, everything) == (["calm"], ["dozy"], ["calm", "dozy"])
    assert (awake_later, asleep_later) == (["calm", "dozy"], [])
    assert (dozy["account_name"], dozy["mrr_minor"], dozy["currency"]) == (
        "dozy Inc",
        123_400,
        "usd",
    )


async def _two(stack: AlertsStack) -> list[dict[str, object]] | None:
    found = await stack.alerts(state="open", rule="churn_risk_raised")
    return found if len(found) == 2 else None
