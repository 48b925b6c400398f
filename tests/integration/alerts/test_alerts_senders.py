"""The senders against real local receivers: secrets stay out of logs and errors, and
SMTP hosts pass the SSRF guard at connect time like webhook hosts do."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from services.alerts.delivery.channels import parse_channel
from services.alerts.delivery.payloads import sample_event
from services.alerts.delivery.senders import UNREACHABLE, Senders, SendFailed
from services.alerts.delivery.ssrf import TargetPolicy
from tests.support.alerts_receivers import Answer, HttpReceiver, smtp_server
from tests.support.servers import serve

SECRET_PATH = "T0001/B0002/very-secret-token"
LOOPBACK = TargetPolicy.build(allow_http=True, allow=["127.0.0.1", "::1", "localhost"])


async def test_secret_webhook_urls_stay_out_of_logs_and_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = HttpReceiver()
    receiver.answer(f"/services/{SECRET_PATH}", Answer(200), Answer(500))
    senders = Senders(LOOPBACK, 5)
    try:
        async with serve(receiver.app()) as url:
            channel = parse_channel(
                {"id": "cs", "kind": "slack", "webhook_url": f"{url}/services/{SECRET_PATH}"}
            )
            event = sample_event(datetime.now(UTC))
            await senders.send(channel, "notice-1", event, [])
            with pytest.raises(SendFailed) as failed:
                await senders.send(channel, "notice-2", event, [])
    finally:
        await senders.close()

    assert len(receiver.requests) == 2
    assert str(failed.value) == "HTTP 500 from the receiver"
    # The receiver's own access log (uvicorn, in this process) is not the sender's.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("uvicorn")]
    assert ours and not [line for line in ours if SECRET_PATH in line]


async def test_an_smtp_host_is_checked_when_connecting(caplog: pytest.LogCaptureFixture) -> None:
    async with smtp_server() as (mailbox, port):
        channel = parse_channel(
            {
                "id": "mail",
                "kind": "email",
                "host": "localhost",
                "port": port,
                "security": "none",
                "sender": "vitals@vendor.example",
                "to": ["cs@vendor.example"],
            }
        )
        event = sample_event(datetime.now(UTC))
        guarded = Senders(TargetPolicy.build(allow_http=False, allow=[]), 5)
        allowed = Senders(LOOPBACK, 5)
        try:
            with pytest.raises(SendFailed) as refused:
                await guarded.send(channel, "notice-1", event, ["cs@vendor.example"])
            delivered_before = len(mailbox.messages)
            await allowed.send(channel, "notice-2", event, ["cs@vendor.example"])
        finally:
            await guarded.close()
            await allowed.close()

    assert refused.value.permanent
    assert str(refused.value) == UNREACHABLE  # the reason is for the log only
    assert "localhost resolves to 127.0.0.1, a loopback address" in caplog.text
    assert delivered_before == 0
    assert [m["Message-ID"] for m in mailbox.messages] == ["<notice-2@vitals>"]
