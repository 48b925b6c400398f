"""The alerts API on a running service: admin token, silences, ack and snooze, channels
with secrets masked, channel tests, routes, the alerts topic and the daily digest."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.auth import Scope
from shared.scores import Risk, ScoreChange, Tier
from tests.integration.alerts.conftest import ADMIN, AlertsStack, StackFactory
from tests.support.alerts_messages import enriched_change, facts, later
from tests.support.alerts_receivers import HttpReceiver
from tests.support.auth import make_keys_file
from tests.support.kafka import consume
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET_PATH = "T000/B000/very-secret-token"


def risky(stack: AlertsStack, account_id: str = "acme", **fields: Any) -> ScoreChange:
    return enriched_change(
        account_id=account_id,
        risk=Risk.high,
        computed_at=stack.clock.now,
        account=facts(last_usage_at=stack.clock.now),
        **fields,
    )


def hook(url: str) -> dict[str, object]:
    return {"channels": [{"id": "hook", "kind": "webhook", "url": f"{url}/hook"}]}


async def test_the_admin_api_needs_the_admin_token(alerts_stack: StackFactory) -> None:
    async with alerts_stack() as stack:
        missing = await stack.api.get("/v1/channels")
        wrong = await stack.api.get("/v1/silences", headers={"authorization": "Bearer nope"})
        right = await stack.api.get("/v1/routes", headers=ADMIN)
        public = await stack.api.get("/v1/alerts")
    async with alerts_stack(alerts_admin_token=None) as stack:
        off = await stack.api.get("/v1/channels", headers=ADMIN)

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["error"] == "unauthorized"
    assert (right.status_code, public.status_code) == (200, 200)
    assert off.status_code == 403 and off.json()["error"] == "admin_api_off"


async def test_alerts_need_the_read_scope_and_acting_on_them_the_act_scope(
    alerts_stack: StackFactory, tmp_path: Path
) -> None:
    keys_file, keys = make_keys_file(
        tmp_path,
        {"csm-tool": [Scope.read], "csm": [Scope.read, Scope.act], "pipeline": [Scope.ingest]},
    )
    reader = {"authorization": f"Bearer {keys['csm-tool']}"}
    actor = {"authorization": f"Bearer {keys['csm']}"}
    async with alerts_stack(api_keys_file=keys_file) as stack:
        await stack.send(risky(stack))
        await wait_for(lambda: _listed(stack, reader), 30, "the alert")
        missing = await stack.api.get("/v1/alerts")
        wrong_scope = await stack.api.get("/v1/deliveries", headers={"X-API-Key": keys["pipeline"]})
        (alert,) = (await stack.api.get("/v1/alerts", headers=reader)).json()["alerts"]
        unkeyed_ack = await stack.api.post(f"/v1/alerts/{alert['id']}/ack", json={"by": "x"})
        ack = f"/v1/alerts/{alert['id']}/ack"
        read_only_ack = await stack.api.post(ack, json={"by": "x"}, headers=reader)
        read_only_snooze = await stack.api.post(
            f"/v1/alerts/{alert['id']}/snooze", json={"for": "1d"}, headers=reader
        )
        acked = await stack.api.post(ack, json={"by": "dana"}, headers=actor)

    assert (missing.status_code, missing.json()["error"]) == (401, "missing_api_key")
    assert (wrong_scope.status_code, wrong_scope.json()["error"]) == (403, "insufficient_scope")
    assert unkeyed_ack.status_code == 401
    assert (read_only_ack.status_code, read_only_ack.json()["error"]) == (403, "insufficient_scope")
    assert read_only_snooze.status_code == 403
    assert acked.status_code == 200 and acked.json()["acked_by"] == "dana"


async def _listed(stack: AlertsStack, headers: dict[str, str]) -> bool:
    response = await stack.api.get("/v1/alerts", headers=headers)
    return response.status_code == 200 and bool(response.json()["alerts"])


async def test_channels_are_listed_masked_tested_and_ssrf_targets_refused(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack() as stack:
        slack = {"kind": "slack", "webhook_url": f"{url}/services/{SECRET_PATH}"}
        created = await stack.api.put("/v1/channels/cs", json=slack, headers=ADMIN)
        listed = await stack.api.get("/v1/channels", headers=ADMIN)
        tested = await stack.api.post("/v1/channels/cs/test", headers=ADMIN)
        metadata = {"kind": "webhook", "url": "https://169.254.169.254/latest/meta-data"}
        refused = await stack.api.put("/v1/channels/meta", json=metadata, headers=ADMIN)
        private = {"kind": "webhook", "url": "https://10.0.0.8/hook"}
        refused_private = await stack.api.put("/v1/channels/p", json=private, headers=ADMIN)
        bad = await stack.api.put("/v1/channels/x", json={"kind": "slack"}, headers=ADMIN)

    assert created.status_code == 200, created.text
    assert created.json()["config"]["webhook_url"] == "http://127.0.0.1/****"
    assert SECRET_PATH not in created.text + listed.text
    assert tested.json() == {"delivered": True, "error": None}
    (test_message,) = receiver.requests
    assert test_message.path == f"/services/{SECRET_PATH}"
    assert "this channel works" in test_message.json()["text"]
    assert refused.status_code == 422 and refused.json()["error"] == "target_refused"
    assert "cloud metadata" in refused.json()["message"]
    assert refused_private.status_code == 422
    assert bad.status_code == 422
    assert bad.json()["details"] == [{"problem": "webhook_url: Field required"}]


async def test_a_silence_mutes_and_ack_and_snooze_stop_reminders(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=hook(url)) as stack:
        ends = (stack.clock.now + timedelta(hours=2)).isoformat()
        silence = {"owner": "DANA@vendor.example", "ends_at": ends, "comment": "on leave"}
        made = await stack.api.post("/v1/silences", json=silence, headers=ADMIN)
        no_matcher = await stack.api.post("/v1/silences", json={"ends_at": ends}, headers=ADMIN)
        first = risky(stack)
        await stack.send(first)
        (alert,) = await wait_for(lambda: stack.alerts(state="open"), 30, "the muted alert")
        await stack.api.delete(f"/v1/silences/{made.json()['id']}", headers=ADMIN)

        stack.clock.advance(timedelta(hours=1))
        await stack.send(later(first, timedelta(hours=1)))
        await wait_for(lambda: _count(receiver, 1), 30, "the notice once the silence ended")
        acked = await stack.api.post(f"/v1/alerts/{alert['id']}/ack", json={"by": "dana"})
        stack.clock.advance(timedelta(days=2))
        await stack.send(later(first, timedelta(days=2), sequence=3))
        snoozed = await stack.api.post(f"/v1/alerts/{alert['id']}/snooze", json={"for": "3d"})
        await stack.send(later(first, timedelta(days=2), sequence=4, risk=Risk.low))
        await wait_for(lambda: _count(receiver, 2), 30, "the resolved notice")
        resolved_ack = await stack.api.post(f"/v1/alerts/{alert['id']}/ack", json={})
        unknown = await stack.api.post("/v1/alerts/nope/snooze", json={"for": "1h"})

    assert made.status_code == 201 and no_matcher.status_code == 422
    assert alert["notifications"] == 0
    types = [r.json()["type"] for r in receiver.requests]
    assert types == ["alert.reminded", "alert.resolved"]  # no reminder after the ack
    assert acked.json()["acked_by"] == "dana"
    assert snoozed.json()["snoozed_until"].startswith("2026-11-27T10:00")
    assert resolved_ack.status_code == 409 and unknown.status_code == 404


async def _count(receiver: HttpReceiver, count: int) -> bool:
    assert len(receiver.requests) <= count, [r.json()["type"] for r in receiver.requests]
    return len(receiver.requests) == count


async def test_routes_are_replaced_through_the_api_and_filters_work(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url:
        channels = {
            "channels": [
                {"id": "hook", "kind": "webhook", "url": f"{url}/hook"},
                {"id": "vip", "kind": "webhook", "url": f"{url}/vip"},
            ]
        }
        async with alerts_stack(channels=channels) as stack:
            before = (await stack.api.get("/v1/routes", headers=ADMIN)).json()
            tree = {
                "receivers": ["hook"],
                "routes": [{"match": {"tier": ["S"]}, "receivers": ["vip"]}],
            }
            put = await stack.api.put("/v1/routes", json=tree, headers=ADMIN)
            unknown = await stack.api.put("/v1/routes", json={"receivers": ["x"]}, headers=ADMIN)
            await stack.send(risky(stack, "s-co", tier=Tier.S), risky(stack, "b-co", tier=Tier.B))
            await wait_for(lambda: _count(receiver, 2), 30, "both alerts")
            by_tier = await stack.alerts(tier="S")
            by_owner = await stack.alerts(owner="@dana", state="open")
            by_rule = await stack.alerts(rule="tier_changed")

    assert before == {"source": "default", "route": {"receivers": ["hook", "vip"]}}
    assert put.json()["source"] == "api"
    assert unknown.status_code == 422 and "unknown channels" in unknown.text
    assert {(r.path, r.json()["account_id"]) for r in receiver.requests} == {
        ("/vip", "s-co"),
        ("/hook", "b-co"),
    }
    assert [a["account_id"] for a in by_tier] == ["s-co"]
    assert len(by_owner) == 2 and by_rule == []


async def test_every_transition_is_published_to_the_alerts_topic(
    alerts_stack: StackFactory, kafka: str, topics: dict[str, str]
) -> None:
    async with alerts_stack() as stack:  # no channel: alerts are still published
        first = risky(stack)
        await stack.send(first, later(first, timedelta(hours=1), risk=Risk.low))
        records = await consume(kafka, f"{topics['scores_topic']}.alerts", 2)

    events = [orjson.loads(r.value) for r in records]
    assert [e["type"] for e in events] == ["alert.opened", "alert.resolved"]
    assert all(r.key == b"acme" for r in records)
    assert len({e["event_id"] for e in events}) == 2


async def test_a_digest_channel_sends_each_csm_one_daily_summary(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url:
        channel = {
            "id": "daily",
            "kind": "webhook",
            "url": f"{url}/digest",
            "mode": "digest",
            "digest_hour_utc": 8,
        }
        async with alerts_stack(channels={"channels": [channel]}) as stack:
            sam = facts(
                owner_csm_email="sam@x.example",
                owner_csm_slack=None,
                last_usage_at=stack.clock.now,
            )
            await stack.send(
                risky(stack, "a1"),
                risky(stack, "a2"),
                enriched_change(
                    account_id="b1", risk=Risk.medium, computed_at=stack.clock.now, account=sam
                ),
            )
            await wait_for(lambda: stack.alerts(state="open"), 30, "the alerts")
            await wait_for(lambda: _opened(stack, 3), 30, "three open alerts")
            stack.clock.advance(timedelta(days=1))
            await wait_for(lambda: _count(receiver, 2), 30, "one digest per CSM")

    digests = {r.json()["owner"]: r.json() for r in receiver.requests}
    assert set(digests) == {"dana@vendor.example", "sam@x.example"}
    assert sorted(a["account_id"] for a in digests["dana@vendor.example"]["alerts"]) == ["a1", "a2"]
    assert digests["sam@x.example"]["day"] == "2026-11-23"


async def _opened(stack: AlertsStack, count: int) -> bool:
    return len(await stack.alerts(state="open")) == count


async def test_the_alerts_of_an_account_id_with_a_slash_are_listed_and_read(
    alerts_stack: StackFactory,
) -> None:
    async with alerts_stack() as stack:
        await stack.send(risky(stack, account_id="team/acme"), risky(stack, account_id="team"))
        await wait_for(lambda: _alerts_of(stack, 2), 30, "both alerts")
        (listed,) = await stack.alerts(account_id="team/acme")
        read = await stack.api.get(f"/v1/alerts/{listed['id']}")
        silenced = await stack.api.post(
            "/v1/silences",
            json={"account_id": "team/acme", "ends_at": later_iso(stack, hours=1)},
            headers=ADMIN,
        )

    assert listed["account_id"] == "team/acme"
    assert read.status_code == 200 and read.json()["account_id"] == "team/acme"
    assert silenced.status_code == 201 and silenced.json()["account_id"] == "team/acme"


async def _alerts_of(stack: AlertsStack, count: int) -> bool:
    return len(await stack.alerts()) == count


def later_iso(stack: AlertsStack, **delta: float) -> str:
    return (stack.clock.now + timedelta(**delta)).isoformat()
