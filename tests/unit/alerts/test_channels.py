import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.alerts.configuration import load_files
from services.alerts.delivery.channels import (
    EmailChannel,
    masked,
    parse_channel,
    parse_channels_file,
)
from services.alerts.documents import ConfigError
from services.alerts.settings import AlertsSettings
from tests.support.alerts_receivers import self_signed_tls

SLACK_URL = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def test_secrets_are_masked_and_never_in_repr() -> None:
    slack = parse_channel({"id": "cs", "kind": "slack", "webhook_url": SLACK_URL})
    mail = parse_channel(
        {
            "id": "mail",
            "kind": "email",
            "host": "smtp.example.com",
            "username": "vitals",
            "password": "hunter2",
            "sender": "vitals@example.com",
        }
    )
    hook = parse_channel(
        {"id": "h", "kind": "webhook", "url": "https://x.example/h?token=abc", "secret": "whsec_x"}
    )

    assert masked(slack)["webhook_url"] == "https://hooks.slack.com/****"
    assert (masked(mail)["password"], masked(mail)["username"]) == ("****", "vitals")
    assert (masked(hook)["url"], masked(hook)["secret"]) == ("https://x.example/****", "****")
    shown = " ".join(repr(c) + str(masked(c)) for c in (slack, mail, hook))
    for secret in ("very-secret-token", "hunter2", "token=abc", "whsec_x"):
        assert secret not in shown


def test_the_channels_file_takes_secrets_from_the_environment() -> None:
    document = {
        "channels": [{"id": "cs", "kind": "slack", "webhook_url": "${SLACK_CS_URL}"}],
        "route": {"receivers": ["cs"]},
    }

    (channel,), route = parse_channels_file(document, "channels.yaml", {"SLACK_CS_URL": SLACK_URL})

    assert isinstance(channel.webhook_url, SecretStr)  # type: ignore[union-attr]
    assert channel.webhook_url.get_secret_value() == SLACK_URL  # type: ignore[union-attr]
    assert route is not None and route.receivers == ["cs"]
    with pytest.raises(ConfigError, match="environment variable SLACK_CS_URL is not set"):
        parse_channels_file(document, "channels.yaml", {})


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"id": "x", "kind": "slack", "webhook_url": "not a url"}, "channels[0] (x).webhook_url"),
        ({"id": "x", "kind": "email", "host": "h", "sender": "nobody"}, "channels[0] (x).sender"),
        ({"id": "x", "kind": "email", "host": "h", "sender": "a@b", "to": ["x"]}, "not e-mail"),
        (
            {"id": "X Y", "kind": "teams", "webhook_url": "https://t.example"},
            "channels[0] (X Y).id",
        ),
        ({"id": "x", "kind": "pager"}, "does not match any of the expected tags"),
    ],
)
def test_bad_channels_are_refused_naming_the_field(
    channel: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_channels_file({"channels": [channel]}, "channels.yaml", {})


def test_routes_must_name_existing_channels() -> None:
    document = {"channels": [], "route": {"receivers": ["ghost"]}}

    with pytest.raises(ConfigError, match="unknown channels"):
        parse_channels_file(document, "channels.yaml", {})


def test_the_webhook_url_setting_is_a_trusted_channel(tmp_path: Path) -> None:
    settings = AlertsSettings(alerts_webhook_url="http://127.0.0.1:9999/hook")

    files = load_files(settings)

    (channel,) = files.channels
    assert (channel.id, channel.kind) == ("webhook", "webhook")
    files.policy.check_url("http://127.0.0.1:9999/hook")


def test_by_default_loopback_and_http_targets_are_refused(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text("channels: [{id: h, kind: webhook, url: 'https://127.0.0.1/h'}]")

    with pytest.raises(ConfigError, match=r"channel h: target refused: .* a loopback address"):
        load_files(AlertsSettings(alerts_channels_file=channels))
    channels.write_text("channels: [{id: h, kind: webhook, url: 'http://hooks.example.com/h'}]")
    with pytest.raises(ConfigError, match="only https targets are allowed"):
        load_files(AlertsSettings(alerts_channels_file=channels))


def test_a_placeholder_admin_token_is_refused_in_production() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="alerts_admin_token"):
        AlertsSettings(environment="production", alerts_admin_token="changethis")
    AlertsSettings(environment="development", alerts_admin_token="changethis")


def _mail(**more: object) -> dict[str, object]:
    document = {"id": "mail", "kind": "email", "host": "smtp.example.com"}
    return {**document, "sender": "vitals@example.com", **more}


def test_certificates_may_be_given_inline_as_pem(tmp_path: Path) -> None:
    _, cert_file = self_signed_tls(tmp_path)
    pem = cert_file.read_text()

    channel = parse_channel(_mail(ca_pem=pem))

    assert isinstance(channel, EmailChannel) and channel.ca_pem == pem
    with pytest.raises(ConfigError, match="ca_pem: Value error, not PEM certificates"):
        parse_channel(_mail(ca_pem="root:$6$hash-of-a-password:19000"))
    with pytest.raises(ConfigError, match="not valid PEM certificates") as bad:
        parse_channel(_mail(ca_pem="-----BEGIN CERTIFICATE-----\nc2VjcmV0\n"))
    assert "c2VjcmV0" not in str(bad.value).split("not valid PEM")[1]
    with pytest.raises(ConfigError, match="give ca_file or ca_pem, not both"):
        parse_channel(_mail(ca_pem=pem, ca_file="cert.pem"))
