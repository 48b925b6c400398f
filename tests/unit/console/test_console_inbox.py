"""The inbox as a CSM triages it: severity (high, medium, low), then tier (S A B C),
then age; tier-up notices folded apart; snoozed alerts under their own tab; a bad
filter said in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from services.alerts.schemas import AlertRead
from services.console.inbox import level, triaged
from tests.unit.console.test_console_answers import Apis, signed_in

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _alert(
    id: str, severity: str, tier: str | None, hours_old: int = 0, **more: object
) -> AlertRead:
    return AlertRead.model_validate(
        {
            "id": id,
            "account_id": f"acct-{id}",
            "rule": "tier_changed" if severity in ("up", "down") else "churn_risk_raised",
            "episode": 1,
            "state": "open",
            "severity": severity,
            "health_score": 50,
            "band": "yellow",
            "tier": tier,
            "risk": None,
            "segment": None,
            "owner_email": None,
            "owner_slack": None,
            "summary": f"alert {id}",
            "details": None,
            "opened_at": T0 - timedelta(hours=hours_old),
            "resolved_at": None,
            "last_notified_at": None,
            "notifications": 0,
            "acked_at": None,
            "acked_by": None,
            "snoozed_until": None,
        }
        | more
    )


MIXED = [
    _alert("up-s", "up", "S"),
    _alert("med-c", "medium", "C"),
    _alert("high-b", "high", "B"),
    _alert("drop-s", "drop", "S"),
    _alert("high-s-new", "high", "S", hours_old=1),
    _alert("high-s-old", "high", "S", hours_old=5),
    _alert("up-a", "up", "A", hours_old=3),
    _alert("down-a", "down", "A"),
    _alert("high-none", "high", None),
]


def test_most_severe_first_then_tier_then_oldest_and_tier_ups_folded() -> None:
    inbox = triaged(MIXED)

    assert [a.id for a in inbox.rows] == [
        "high-s-old",
        "high-s-new",
        "high-b",
        "high-none",
        "drop-s",
        "down-a",
        "med-c",
    ]
    assert [a.id for a in inbox.tier_ups] == ["up-s", "up-a"]
    assert [level(a) for a in inbox.rows] == ["high"] * 4 + ["medium"] * 3


def test_acknowledged_alerts_go_after_those_still_waiting() -> None:
    acked = _alert("acked-high", "high", "S", acked_at=T0)
    inbox = triaged([acked, _alert("low-c", "silent", "C")])

    assert [a.id for a in inbox.rows] == ["low-c", "acked-high"]


def _api_alert(alert: AlertRead, **more: object) -> dict[str, object]:
    return alert.model_dump(mode="json") | more


async def test_the_page_shows_name_tier_mrr_severity_and_folds_tier_ups() -> None:
    apis = Apis()
    named = _api_alert(MIXED[2], account_name="Acme Corp", mrr_minor=420_000, currency="EUR")
    apis.answers["/v1/alerts"] = {"alerts": [_api_alert(MIXED[0]), named, _api_alert(MIXED[6])]}
    seen: list[httpx.Request] = []
    answer = apis.answer

    def recorded(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    apis.answer = recorded  # type: ignore[method-assign]
    async with signed_in(apis) as client:
        page = await client.get("/alerts")
        snoozed = await client.get("/alerts?state=snoozed")

    assert page.status_code == 200, page.text
    rows = re.findall(r'<tr id="alert-([^"]+)"', page.text)
    assert rows == ["high-b", "up-s", "up-a"]  # the tier-ups after, inside the fold
    assert "2 tier-up notices</summary>" in page.text
    assert "Acme Corp" in page.text and "4,200.00 EUR" in page.text
    assert '<span class="severity high"' in page.text
    listed = [dict(r.url.params) for r in seen if r.url.path == "/v1/alerts"]
    assert listed[0]["snoozed"] == "false" and listed[1]["snoozed"] == "true"
    assert snoozed.status_code == 200 and 'aria-current="page">Snoozed' in snoozed.text


async def test_a_bad_filter_is_said_in_words() -> None:
    async with signed_in(Apis()) as client:
        tier = await client.get("/alerts?tier=Z")
        state = await client.get("/alerts?state=later")

    assert tier.status_code == 400 and "tier must be one of S, A, B, C" in tier.text
    assert state.status_code == 400 and "state must be one of open, snoozed, resolved" in state.text
