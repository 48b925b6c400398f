"""What a channel may reach and read, against real local receivers: the webhook shorthand
opens exactly its own target, the channel test tells nothing about what listens where,
and certificate files come only from the certificates directory."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.alerts.configuration import load_files
from services.alerts.delivery.channels import Channel, parse_channel
from services.alerts.delivery.payloads import sample_event
from services.alerts.delivery.senders import UNREACHABLE, Senders, SendFailed
from services.alerts.documents import ConfigError
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.conftest import ADMIN, StackFactory
from tests.support.alerts_receivers import (
    Answer,
    HttpReceiver,
    self_signed_tls,
    smtp_server,
    tcp_server,
)
from tests.support.servers import free_port, serve

SENDER = "vitals@vendor.example"
TO = ["cs@vendor.example"]


def _email(channel_id: str, port: int, **more: Any) -> dict[str, Any]:
    document = {"id": channel_id, "kind": "email", "host": "127.0.0.1", "port": port}
    return {**document, "security": "none", "sender": SENDER, "to": TO, **more}


async def test_the_webhook_shorthand_reaches_its_url_and_nothing_else_on_its_host(
    tmp_path: Path,
) -> None:
    receiver, neighbour = HttpReceiver(), HttpReceiver()
    async with (
        serve(receiver.app()) as url,
        serve(neighbour.app()) as other,
        smtp_server() as (mailbox, smtp_port),
    ):
        trusted_port = int(url.rsplit(":", 1)[1])
        files = load_files(AlertsSettings(environment="test", alerts_webhook_url=f"{url}/hook"))
        same_host: list[Channel] = [
            parse_channel({"id": "other-port", "kind": "webhook", "url": f"{other}/hook"}),
            parse_channel(
                {"id": "https", "kind": "webhook", "url": f"https://127.0.0.1:{trusted_port}/hook"}
            ),
            parse_channel(_email("smtp-to-the-trusted-port", trusted_port)),
            parse_channel(_email("a-real-smtp-server", smtp_port)),
        ]
        senders = Senders(files.policy, 5)
        event = sample_event(datetime.now(UTC))
        failures: dict[str, SendFailed] = {}
        try:
            (shorthand,) = files.channels
            await senders.send(shorthand, "notice-1", event, [])
            for channel in same_host:
                with pytest.raises(SendFailed) as failed:
                    await senders.send(channel, f"to-{channel.id}", event, TO)
                failures[channel.id] = failed.value
        finally:
            await senders.close()

    assert [r.headers["webhook-id"] for r in receiver.requests] == ["notice-1"]
    assert neighbour.requests == [] and mailbox.messages == []
    assert {channel: str(failure) for channel, failure in failures.items()} == dict.fromkeys(
        failures, UNREACHABLE
    )
    assert all(failure.permanent for failure in failures.values())  # refused: no retry helps


def test_a_channels_file_cannot_use_the_shorthands_host_on_another_port(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "channels:\n  - id: db\n    kind: webhook\n    url: http://127.0.0.1:5433/\n"
    )
    settings = AlertsSettings(
        environment="test",
        alerts_webhook_url="http://127.0.0.1:9000/hook",
        alerts_channels_file=channels,
    )

    with pytest.raises(ConfigError, match=r"channel db: target refused: 127\.0\.0\.1: only https"):
        load_files(settings)


async def test_the_channel_test_tells_only_http_answers_never_what_listens_where(
    alerts_stack: StackFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.alerts.delivery.senders")
    receiver = HttpReceiver()
    receiver.answer("/unavailable", Answer(503))
    closed_port = free_port()
    async with (
        serve(receiver.app()) as url,
        tcp_server("close") as closing,
        tcp_server("banner") as greeting,
        tcp_server("silent") as silent,
        smtp_server() as (_, smtp_port),
    ):
        http_port = int(url.rsplit(":", 1)[1])
        unreachable: dict[str, dict[str, Any]] = {
            "refused": {"kind": "webhook", "url": f"http://127.0.0.1:{closed_port}/"},
            "closed": {"kind": "webhook", "url": f"http://127.0.0.1:{closing}/"},
            "banner": {"kind": "webhook", "url": f"http://127.0.0.1:{greeting}/"},
            "silent": {"kind": "webhook", "url": f"http://127.0.0.1:{silent}/"},
            "tls-to-http": {"kind": "webhook", "url": f"https://127.0.0.1:{http_port}/"},
            "smtp-to-http": _email("x", http_port),
            "smtp-to-banner": _email("x", greeting),
            "smtp-refused": _email("x", closed_port),
            "smtp-silent": _email("x", silent),
        }
        answering = {
            "unavailable": {"kind": "webhook", "url": f"{url}/unavailable"},
            "ok": {"kind": "webhook", "url": f"{url}/ok"},
            "smtp-ok": _email("x", smtp_port),
        }
        overrides = {"alerts_delivery_timeout_s": 1.0}
        async with alerts_stack(**overrides) as stack:
            results = {}
            for name, document in {**unreachable, **answering}.items():
                document = {key: value for key, value in document.items() if key != "id"}
                put = await stack.api.put(f"/v1/channels/{name}", json=document, headers=ADMIN)
                assert put.status_code == 200, put.text
            for name in [*unreachable, *answering]:
                tested = await stack.api.post(f"/v1/channels/{name}/test", headers=ADMIN)
                assert tested.status_code == 200, tested.text
                results[name] = tested.json()

    outcomes = {name: (r["delivered"], r.get("error")) for name, r in results.items()}
    assert outcomes == {
        **dict.fromkeys(unreachable, (False, UNREACHABLE)),
        "unavailable": (False, "HTTP 503 from the receiver"),
        "ok": (True, None),
        "smtp-ok": (True, None),
    }
    # What happened is in the service's log, for its operators.
    # (An address the guard refuses reads the same: see the shorthand test above.)
    for detail in ("ConnectError", "RemoteProtocolError", "ReadTimeout", "SSL", "SMTP"):
        assert detail in caplog.text


OUTSIDE_SECRET = "root:$6$very-secret-hash:19000:0:99999:7:::"


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """A certificates directory with one good certificate, a file outside it, and links
    and files inside that must not be read."""
    folder = tmp_path / "certificates"
    folder.mkdir()
    self_signed_tls(folder)  # cert.pem (and key.pem, no certificate)
    (tmp_path / "shadow").write_text(OUTSIDE_SECRET)
    (folder / "link.pem").symlink_to(tmp_path / "shadow")
    (folder / "notes.pem").write_text(OUTSIDE_SECRET)
    return folder


async def test_a_certificate_file_outside_the_directory_is_refused_without_its_content(
    alerts_stack: StackFactory, certificates: Path
) -> None:
    tries = {
        "etc-shadow": "/etc/shadow",
        "outside": str(certificates.parent / "shadow"),
        "dot-dot": "../shadow",
        "symlink-out": "link.pem",
        "not-a-certificate": "notes.pem",
        "missing": "nothing-here.pem",
    }
    overrides = {"alerts_certificates_dir": certificates}
    async with alerts_stack(**overrides) as stack:
        answers = {
            name: await stack.api.put(
                f"/v1/channels/{name}",
                json={**_email(name, 25, security="starttls", ca_file=ca_file), "id": name},
                headers=ADMIN,
            )
            for name, ca_file in tries.items()
        }
        good = await stack.api.put(
            "/v1/channels/good",
            json={**_email("good", 25, security="starttls", ca_file="cert.pem")},
            headers=ADMIN,
        )

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(tries, 422)
    for answer in answers.values():
        assert "ca_file" in answer.text
        assert "very-secret-hash" not in answer.text
    assert "is not inside the certificates directory" in answers["symlink-out"].text
    assert "does not hold PEM certificates" in answers["not-a-certificate"].text
    assert good.status_code == 200, good.text


def test_a_channels_file_naming_a_file_outside_the_directory_stops_the_start(
    tmp_path: Path, certificates: Path
) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "channels:\n  - {id: mail, kind: email, host: smtp.example.com, "
        "sender: a@example.com, ca_file: /etc/shadow}\n"
    )
    without_folder = AlertsSettings(environment="test", alerts_channels_file=channels)
    with_folder = AlertsSettings(
        environment="test", alerts_channels_file=channels, alerts_certificates_dir=certificates
    )

    with pytest.raises(ConfigError, match="set VITALS_ALERTS_CERTIFICATES_DIR"):
        load_files(without_folder)
    with pytest.raises(ConfigError, match="channel mail: ca_file: /etc/shadow is not inside"):
        load_files(with_folder)


async def test_a_certificate_file_swapped_after_configuration_is_not_read(
    certificates: Path,
) -> None:
    async with smtp_server() as (mailbox, port):
        files = load_files(AlertsSettings(environment="test", alerts_certificates_dir=certificates))
        channel = parse_channel(_email("mail", port, security="starttls", ca_file="cert.pem"))
        # Replaced by a link out of the directory once the channel was accepted.
        (certificates / "cert.pem").unlink()
        (certificates / "cert.pem").symlink_to(certificates.parent / "shadow")
        senders = Senders(files.policy, 5)
        try:
            with pytest.raises(SendFailed) as failed:
                await senders.send(channel, "notice-1", sample_event(datetime.now(UTC)), TO)
        finally:
            await senders.close()

    assert failed.value.permanent and mailbox.messages == []
    assert "is not inside the certificates directory" in str(failed.value)
    assert "very-secret-hash" not in str(failed.value)
