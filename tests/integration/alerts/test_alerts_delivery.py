"""Routing to real local receivers (Slack, Teams, SMTP, signed webhooks), Slack's 429,
a receiver that is down and comes back, 410 Gone, and two dispatching replicas."""

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.scores import Risk, ScoreChange, Tier
from tests.integration.alerts.conftest import ADMIN, StackFactory
from tests.support.alerts_messages import enriched_change, facts
from tests.support.alerts_receivers import (
    Answer,
    HttpReceiver,
    self_signed_tls,
    serve_on,
    smtp_server,
)
from tests.support.clock import FakeClock
from tests.support.servers import free_port, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def risky(account_id: str, tier: Tier, clock: FakeClock, **facts_: Any) -> ScoreChange:
    return enriched_change(
        account_id=account_id,
        tier=tier,
        risk=Risk.high,
        risk_reasons=["payment failed"],
        computed_at=clock.now,
        account=facts(last_usage_at=clock.now, **facts_),
    )


async def _count(receiver: HttpReceiver, path: str, count: int) -> bool:
    got = receiver.at(path)
    assert len(got) <= count, [r.body for r in got]
    return len(got) == count


async def test_routing_sends_each_alert_to_its_channels_in_their_format(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, smtp_server() as (mailbox, smtp_port):
        channels = {
            "channels": [
                {
                    "id": "strategic",
                    "kind": "slack",
                    "webhook_url": f"{url}/slack",
                    "per_second": 10,
                },
                {
                    "id": "owner-mail",
                    "kind": "email",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "security": "none",
                    "sender": "vitals@vendor.example",
                    "to": ["owner"],
                },
                {"id": "smb-teams", "kind": "teams", "webhook_url": f"{url}/teams"},
                {"id": "hook", "kind": "webhook", "url": f"{url}/hook"},
            ],
            "route": {
                "receivers": ["hook"],
                "routes": [
                    {"match": {"tier": ["S"]}, "receivers": ["strategic", "owner-mail"]},
                    {"match": {"segment": ["smb"]}, "receivers": ["smb-teams"]},
                ],
            },
        }
        async with alerts_stack(channels=channels) as stack:
            clock = stack.clock
            await stack.send(
                risky("big", Tier.S, clock, owner_csm_email="sam@vendor.example", name="Big Co"),
                risky("small", Tier.C, clock, segment="smb"),
                risky("mid", Tier.A, clock),
            )
            await wait_for(lambda: _count(receiver, "/slack", 1), 30, "the Slack message")
            await wait_for(lambda: _count(receiver, "/teams", 1), 30, "the Teams card")
            await wait_for(lambda: _count(receiver, "/hook", 1), 30, "the webhook")
            await wait_for(lambda: _has(mailbox.messages, 1), 30, "the e-mail")

    (slack,) = receiver.at("/slack")
    assert slack.json()["blocks"][0]["text"]["text"] == "Churn risk raised: Big Co"
    (teams,) = receiver.at("/teams")
    card = teams.json()["attachments"][0]
    assert (card["contentType"], card["content"]["version"]) == (
        "application/vnd.microsoft.card.adaptive",
        "1.4",
    )
    assert receiver.at("/hook")[0].json()["account_id"] == "mid"
    (mail,) = mailbox.messages
    assert mailbox.envelopes == [("vitals@vendor.example", ["sam@vendor.example"])]
    assert mail["Subject"] == "[Vitals] Churn risk raised: Big Co"
    assert {part.get_content_type() for part in mail.iter_parts()} == {"text/plain", "text/html"}


async def _has(items: Sequence[object], count: int) -> bool:
    return len(items) >= count


@pytest.mark.parametrize(
    ("security", "trust"),
    [("starttls", "ca_file"), ("tls", "ca_file"), ("starttls", "ca_pem")],
)
async def test_email_over_starttls_and_implicit_tls(
    alerts_stack: StackFactory, tmp_path: Path, security: str, trust: str
) -> None:
    certificates = tmp_path / "certificates"
    certificates.mkdir()
    server_tls, ca_file = self_signed_tls(certificates)
    implicit = security == "tls"
    # A file of the certificates directory, by its name there, or the PEM text itself.
    ca = {"ca_file": ca_file.name} if trust == "ca_file" else {"ca_pem": ca_file.read_text()}
    async with smtp_server(tls=server_tls, implicit_tls=implicit) as (mailbox, port):
        channel = {
            "id": "mail",
            "kind": "email",
            "host": "localhost",
            "port": port,
            "security": security,
            **ca,
            "sender": "vitals@vendor.example",
            "to": ["cs-team@vendor.example", "owner"],
        }
        overrides = {
            "alerts_target_allowlist": "127.0.0.1,localhost,::1",
            "alerts_certificates_dir": certificates,
        }
        async with alerts_stack(channels={"channels": [channel]}, **overrides) as stack:
            await stack.send(risky("acme", Tier.A, stack.clock))
            await wait_for(lambda: _has(mailbox.messages, 1), 30, "the e-mail")

    assert mailbox.envelopes == [
        ("vitals@vendor.example", ["cs-team@vendor.example", "dana@vendor.example"])
    ]


async def test_slack_429_pauses_the_webhook_until_retry_after(alerts_stack: StackFactory) -> None:
    receiver = HttpReceiver()
    receiver.answer("/slack", Answer(429, {"retry-after": "30"}))
    async with serve(receiver.app()) as url:
        channel = {"id": "cs", "kind": "slack", "webhook_url": f"{url}/slack", "per_second": 10}
        async with alerts_stack(channels={"channels": [channel]}) as stack:
            await stack.send(risky("a", Tier.A, stack.clock))
            await wait_for(lambda: _count_status(receiver, 429, 1), 30, "the 429")
            await stack.send(risky("b", Tier.A, stack.clock))
            waiting = await stack.wait_deliveries(
                lambda rows: len(rows) == 2, "the second delivery queued"
            )
            await asyncio.sleep(0)  # let a dispatch round run while paused
            stack.clock.advance(timedelta(seconds=31))
            await wait_for(lambda: _count(receiver, "/slack", 2), 30, "both delivered")
            rows = await stack.deliveries()

    (first,) = [row for row in waiting if row.attempts == 1]
    assert first.next_attempt_at >= stack.clock.now - timedelta(seconds=31) + timedelta(seconds=30)
    assert sorted((r.status, r.attempts) for r in rows) == [("delivered", 1), ("delivered", 2)]
    assert len(receiver.requests) == 3


async def _count_status(receiver: HttpReceiver, status: int, count: int) -> bool:
    return len(receiver.at("/slack", status)) == count


ACCOUNTS = 12


async def test_a_receiver_down_then_back_gets_every_alert_exactly_once_from_two_replicas(
    alerts_stack: StackFactory,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    channels = {"channels": [{"id": "hook", "kind": "webhook", "url": f"{url}/hook"}]}
    clock = FakeClock()
    async with contextlib.AsyncExitStack() as replicas:
        first = await replicas.enter_async_context(alerts_stack(channels=channels, clock=clock))
        await replicas.enter_async_context(alerts_stack(channels=channels, clock=clock))
        await first.send(*(risky(f"acct-{n}", Tier.B, clock) for n in range(ACCOUNTS)))
        # Some fail; the channel is then paused and the others wait without an attempt.
        down = await first.wait_deliveries(
            lambda rows: len(rows) == ACCOUNTS and all(r.next_attempt_at > clock.now for r in rows),
            "every delivery to fail or wait",
        )
        receiver = HttpReceiver()
        async with serve_on(receiver.app(), port):
            for _ in range(3):  # the first retry comes 5 to 6 s later
                clock.advance(timedelta(seconds=3))
            rows = await first.wait_deliveries(
                lambda rows: all(r.status == "delivered" for r in rows), "all delivered"
            )
            await asyncio.sleep(0.5)  # a double send would show up here

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == ACCOUNTS and set(ids) == {r.id for r in rows}
    assert 1 <= sum(r.attempts for r in down) < ACCOUNTS  # a dead receiver is not hammered
    assert {r.attempts for r in rows} <= {1, 2}
    assert all(r.last_error is None for r in rows)


async def test_410_disables_the_channel_and_the_api_shows_why(alerts_stack: StackFactory) -> None:
    receiver = HttpReceiver()
    receiver.answer("/hook", Answer(410))
    async with serve(receiver.app()) as url:
        channels = {"channels": [{"id": "hook", "kind": "webhook", "url": f"{url}/hook"}]}
        async with alerts_stack(channels=channels) as stack:
            await stack.send(risky("a", Tier.A, stack.clock))
            await stack.wait_deliveries(
                lambda rows: bool(rows) and rows[0].status == "dead", "the 410"
            )
            await stack.send(risky("b", Tier.A, stack.clock))
            rows = await stack.wait_deliveries(
                lambda rows: len(rows) == 2 and all(r.status == "dead" for r in rows),
                "the next one refused",
            )
            listed = (await stack.api.get("/v1/channels", headers=ADMIN)).json()["channels"]
            dead = (await stack.api.get("/v1/deliveries", params={"status": "dead"})).json()
            # Fixed at the receiver's end: enable the channel, send what died meanwhile.
            enabled = await stack.api.post("/v1/channels/hook/enable", headers=ADMIN)
            (missed,) = [row for row in rows if row.payload["account_id"] == "b"]
            retried = await stack.api.post(f"/v1/deliveries/{missed.id}/retry", headers=ADMIN)
            again = await stack.api.post(f"/v1/deliveries/{missed.id}/retry", headers=ADMIN)
            unknown = await stack.api.post("/v1/deliveries/nope/retry", headers=ADMIN)
            anonymous = await stack.api.post(f"/v1/deliveries/{missed.id}/retry")
            await wait_for(lambda: _count(receiver, "/hook", 1), 30, "the retried delivery")

    assert len(receiver.at("/hook", 410)) == 1
    (refused,) = [row for row in rows if row.payload["account_id"] == "b"]
    assert refused.attempts == 0 and "is disabled" in (refused.last_error or "")
    assert listed[0]["enabled"] is False
    assert listed[0]["disabled_reason"] == "HTTP 410 from the receiver: the channel is gone"
    assert len(dead["deliveries"]) == 2
    assert enabled.json()["enabled"] is True
    assert (retried.status_code, retried.json()["status"]) == (200, "pending")
    assert (again.status_code, unknown.status_code, anonymous.status_code) == (409, 404, 401)
    assert [r.headers["webhook-id"] for r in receiver.at("/hook")] == [missed.id]


async def test_consume_and_dispatch_roles_split_the_work(alerts_stack: StackFactory) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url:
        channels = {"channels": [{"id": "hook", "kind": "webhook", "url": f"{url}/hook"}]}
        async with alerts_stack(channels=channels, alerts_role="consume") as consuming:
            await consuming.send(risky("a", Tier.A, consuming.clock))
            queued = await consuming.wait_deliveries(lambda rows: len(rows) == 1, "the queued row")
            async with alerts_stack(
                channels=channels, clock=consuming.clock, alerts_role="dispatch"
            ) as dispatching:
                await wait_for(lambda: _count(receiver, "/hook", 1), 30, "the delivery")
                ready = (await dispatching.api.get("/readyz")).json()

    assert [(r.status, r.attempts) for r in queued] == [("pending", 0)]  # nobody sent it
    assert receiver.at("/hook")[0].headers["webhook-id"] == queued[0].id
    checks = ready["checks"]
    assert (checks["dispatcher"], checks["database"]) == ("ok", "ok")
    assert "kafka" not in checks and "consumer" not in checks  # no broker needed
