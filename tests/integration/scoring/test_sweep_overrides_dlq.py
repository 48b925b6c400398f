"""Time passing without events, CSM overrides, and events too late for their window."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.scoring.app import create_app
from services.scoring.models import AccountOverride
from shared.db import create_engine, session_factory
from shared.dlq import DeadLetter
from shared.scores import ScoreChange, Trigger
from tests.support.clock import FakeClock
from tests.support.kafka import consume, produce
from tests.support.scoring_builders import billing, usage
from tests.support.scoring_service import account_where, applied, records, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _healthy(clock: FakeClock) -> list[Any]:
    return [
        billing(at=clock.now, seats=1, mrr_minor=100_000, subscription_status="active"),
        usage(at=clock.now, user_id="u1", feature="report.exported"),
    ]


async def _history(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await api.get("/v1/accounts/acme/history")).json()["entries"]
    return entries


async def test_the_sweep_sees_silence_days_later_without_any_event(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records(_healthy(clock)))
        before = await wait_for(applied(api, "acme", 2), 30, "the events")
        clock.advance(timedelta(days=20))
        after = await wait_for(
            account_where(api, "acme", lambda a: a["risk"] == "high"), 30, "the sweep"
        )
        history = await _history(api)

    assert (before["risk"], before["stale"]) == ("low", False)
    assert after["stale"] is True
    assert "no usage for 14 days" in after["risk_reasons"]
    assert after["health_score"] < before["health_score"]
    assert history[-1]["trigger"] == Trigger.sweep, history
    assert any(d["component"] == "recency" for d in history[-1]["drivers"])


async def test_an_override_shows_at_once_is_audited_and_lapses_by_itself(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    override = {
        "field": "band",
        "value": "red",
        "reason": "champion left; renewal at risk",
        "expires_at": (clock.now + timedelta(days=1)).isoformat(),
        "created_by": "kim@example.com",
    }
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records(_healthy(clock)))
        await wait_for(applied(api, "acme", 2), 30, "the events")
        created = await api.post("/v1/accounts/acme/overrides", json=override)
        shown = (await api.get("/v1/accounts/acme")).json()
        try:
            scored = await wait_for(_last_trigger(api, Trigger.override), 10, "the override score")
        except AssertionError:
            raise AssertionError(str(await _history(api))) from None
        clock.advance(timedelta(days=2))
        lapsed = await wait_for(
            account_where(api, "acme", lambda a: a["band"] == "green" and not a["overrides"]),
            30,
            "the lapse",
        )
        lapse_entry = await wait_for(_last_band(api, "green"), 30, "the lapse in the history")
        nothing_to_lift = await api.delete("/v1/accounts/acme/overrides", params={"by": "kim"})
        fresh = {**override, "expires_at": (clock.now + timedelta(days=1)).isoformat()}
        unknown = await api.post("/v1/accounts/nobody/overrides", json=fresh)
        past = await api.post(
            "/v1/accounts/acme/overrides",
            json={**override, "expires_at": (clock.now - timedelta(hours=1)).isoformat()},
        )
        wrong_value = await api.post("/v1/accounts/acme/overrides", json={**override, "value": "S"})

    assert created.status_code == 201, created.text
    assert (shown["band"], shown["computed_band"]) == ("red", "green")
    assert shown["overrides"][0]["reason"] == override["reason"]
    assert shown["overrides"][0]["created_by"] == "kim@example.com"
    assert scored["band"] == "red"
    assert lapsed["computed_band"] == "green"
    assert lapse_entry["trigger"] in (Trigger.override, Trigger.sweep)  # whichever came first
    assert nothing_to_lift.status_code == 404
    assert (unknown.status_code, past.status_code, wrong_value.status_code) == (404, 422, 422)
    audit = await _audit(scoring_db)
    assert [(o.value, o.created_by, o.lapsed_at is not None) for o in audit] == [
        ("red", "kim@example.com", True)
    ]
    messages = [
        ScoreChange.from_bytes(r.value) for r in await consume(kafka, topics["scores_topic"], 3)
    ]
    assert ["band"] in [m.overridden for m in messages]


async def test_lifting_an_override_restores_the_computed_band(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    override = {
        "field": "tier",
        "value": "S",
        "reason": "strategic logo",
        "expires_at": (clock.now + timedelta(days=30)).isoformat(),
        "created_by": "kim@example.com",
    }
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records(_healthy(clock)))
        before = await wait_for(applied(api, "acme", 2), 30, "the events")
        assert (await api.post("/v1/accounts/acme/overrides", json=override)).status_code == 201
        await wait_for(_last_trigger(api, Trigger.override), 30, "the override score")
        lifted = await api.delete(
            "/v1/accounts/acme/overrides", params={"by": "lee", "field": "tier", "reason": "done"}
        )
        after = await wait_for(
            account_where(api, "acme", lambda a: not a["overrides"]), 30, "the lift"
        )

    assert lifted.json() == {"lifted": 1}
    assert after["tier"] == before["tier"]
    (audit,) = await _audit(scoring_db)
    assert (audit.lifted_by, audit.lift_reason) == ("lee", "done")


def _last_trigger(api: httpx.AsyncClient, trigger: Trigger):  # type: ignore[no-untyped-def]
    async def check() -> dict[str, Any] | None:
        entries = await _history(api)
        return entries[-1] if entries and entries[-1]["trigger"] == trigger else None

    return check


def _last_band(api: httpx.AsyncClient, band: str):  # type: ignore[no-untyped-def]
    async def check() -> dict[str, Any] | None:
        entries = await _history(api)
        return entries[-1] if entries and entries[-1]["band"] == band else None

    return check


async def _audit(database: str) -> list[AccountOverride]:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(AccountOverride)))
    finally:
        await engine.dispose()


async def test_an_event_too_late_for_its_window_goes_to_the_dlq(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    late = usage(at=clock.now - timedelta(days=8), user_id="late")
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records([usage(at=clock.now)]))
        await wait_for(applied(api, "acme", 1), 30, "the first event")
        await produce(kafka, topics["events_topic"], records([late]))
        (record,) = await consume(kafka, settings.dlq_topic, 1)
        account = (await api.get("/v1/accounts/acme")).json()
        metrics = (await api.get("/metrics")).text

    letter = DeadLetter.from_bytes(record.value)
    assert (letter.reason, letter.event_id, letter.account_id) == (
        "too_late",
        late.event_id,
        "acme",
    )
    assert letter.original() == late.to_bytes()
    assert letter.processor.startswith("scoring@")
    assert letter.topic == topics["events_topic"] and letter.offset is not None
    assert account["events_applied"] == 1
    assert "vitals_scoring_events_too_late_total" in metrics
