"""Channel definitions: where notices go and how. Pure models, secrets kept secret.

Channels come from the channels file (``VITALS_ALERTS_CHANNELS_FILE``), from
``VITALS_ALERTS_WEBHOOK_URL`` (one generic webhook named ``webhook``) and from the
admin API. Secret values (webhook URLs, passwords, signing secrets) are ``SecretStr``:
they never appear in ``repr``, logs or API answers; :func:`masked` shows what may be shown,
and :func:`seal_document` what is stored (secrets encrypted, sealing.py).
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from services.alerts.delivery.certificates import pem_certificates, read_certificates
from services.alerts.delivery.routing import ChannelId, RoutingTree, parse_routes
from services.alerts.delivery.sealing import SecretBox, transform
from services.alerts.delivery.ssrf import TargetPolicy
from services.alerts.documents import ConfigError, JsonObject, describe_errors

OWNER = "owner"
ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}")
MASK = "****"
MAX_PEM_CHARS = 65536


class ChannelBase(BaseModel):
    """What every channel kind has; a kind says what differs by overriding the methods
    below (never by callers asking which kind a channel is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ChannelId
    enabled: bool = True
    mode: Literal["immediate", "digest"] = Field(
        "immediate", description="immediate: one message per notice; digest: one a day per CSM."
    )
    digest_hour_utc: int = Field(9, ge=0, le=23, description="Hour the daily digest is sent.")

    parallel: ClassVar[int] = 8
    """Notices of different alerts sent to it at once, from one replica."""

    def check_target(self, policy: TargetPolicy) -> None:
        """Raise TargetRefused for a target that is not allowed (addresses are checked
        again on connect), ConfigError for a certificate file outside its directory."""
        raise NotImplementedError

    def host_and_port(self) -> tuple[str, int] | None:
        """The host and port it connects to."""
        raise NotImplementedError

    def paced_per_second(self) -> float | None:
        """Messages per second a receiver accepts at most, when it says so."""
        return None

    def recipients(self, owner_email: str | None) -> list[str] | None:
        """Who a notice goes to, for a channel that addresses people; else None."""
        return None

    def test_recipients(self) -> list[str]:
        """Who gets a test notice: the fixed addresses (the owner is unknown in a test)."""
        return []


class PostsToUrl(ChannelBase):
    """A channel that posts notices to a URL, ``endpoint``."""

    def endpoint(self) -> SecretStr:
        raise NotImplementedError

    def check_target(self, policy: TargetPolicy) -> None:
        policy.check_url(self.endpoint().get_secret_value())

    def host_and_port(self) -> tuple[str, int] | None:
        parts = urlsplit(self.endpoint().get_secret_value())
        if parts.hostname is None:
            return None
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class HttpChannel(PostsToUrl):
    """A chat tool's incoming webhook."""

    webhook_url: SecretStr

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        return _http_url(value)

    def endpoint(self) -> SecretStr:
        return self.webhook_url


class SlackChannel(HttpChannel):
    kind: Literal["slack"]
    per_second: float = Field(1.0, gt=0, le=10, description="Messages per second at most.")

    # One at a time: Slack answers 429 to bursts on one webhook.
    parallel: ClassVar[int] = 1

    def paced_per_second(self) -> float:
        return self.per_second


class TeamsChannel(HttpChannel):
    kind: Literal["teams"]


class EmailChannel(ChannelBase):
    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (port 587), tls (implicit, port 465) or none."
    )
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(
        None,
        description=(
            "CA certificates to trust for TLS besides the system ones: a PEM file in "
            "VITALS_ALERTS_CERTIFICATES_DIR (relative to it, or absolute inside it)."
        ),
    )
    ca_pem: str | None = Field(
        None,
        max_length=MAX_PEM_CHARS,
        description="The same as PEM text (-----BEGIN CERTIFICATE----- ...), instead of a file.",
    )
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(
        default_factory=lambda: [OWNER],
        min_length=1,
        description='Addresses; "owner" is the account\'s owner CSM.',
    )

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a != OWNER and not re.match(r"^[^@\s]+@[^@\s]+$", a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @field_validator("ca_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            pem_certificates(value)
        return value

    @model_validator(mode="after")
    def _one_certificate_source(self) -> EmailChannel:
        if self.ca_file is not None and self.ca_pem is not None:
            raise ValueError("give ca_file or ca_pem, not both")
        return self

    def check_target(self, policy: TargetPolicy) -> None:
        policy.check_smtp_host(self.host)
        if self.ca_file is not None:
            read_certificates(self.ca_file, policy.certificates_dir)

    def host_and_port(self) -> tuple[str, int]:
        return self.host, self.port

    def recipients(self, owner_email: str | None) -> list[str]:
        found = (owner_email if to == OWNER else to for to in self.to)
        return list(dict.fromkeys(to for to in found if to))

    def test_recipients(self) -> list[str]:
        return [to for to in self.to if to != OWNER] or [self.sender]


class WebhookChannel(PostsToUrl):
    kind: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = Field(
        None, description="Standard Webhooks signing secret (whsec_...); unset: unsigned."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        return _http_url(value)

    def endpoint(self) -> SecretStr:
        return self.url


Channel = Annotated[
    SlackChannel | TeamsChannel | EmailChannel | WebhookChannel, Field(discriminator="kind")
]
CHANNEL = TypeAdapter[Channel](Channel)


class ChannelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    channels: list[Channel] = Field(default_factory=list)
    route: dict[str, object] | None = None  # a routing tree: parse_routes checks it


def _http_url(value: SecretStr) -> SecretStr:
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


def parse_channel(document: object, source: str = "channel") -> Channel:
    try:
        return CHANNEL.validate_python(document)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, document, source)) from None


def parse_channels_file(
    document: object, source: str, environ: dict[str, str] | None = None
) -> tuple[list[Channel], RoutingTree | None]:
    """Channels and routes of a channels file, ``${VAR}`` references filled from ``environ``."""
    expanded = expand_env(document, os.environ if environ is None else environ, source)
    try:
        parsed = ChannelsFile.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, expanded, source)) from None
    ids = [c.id for c in parsed.channels]
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise ConfigError(f"{source} is invalid:\n  channels: ids repeated: {doubled}")
    route = None if parsed.route is None else parse_routes(parsed.route, set(ids), source)
    return list(parsed.channels), route


def expand_env(node: object, environ: dict[str, str] | os._Environ[str], source: str) -> object:
    """Secrets stay out of the file: ``${SLACK_CS_URL}`` is read from the environment."""
    if isinstance(node, str):

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{source}: environment variable {name} is not set")
            return environ[name]

        return ENV_REFERENCE.sub(value, node)
    if isinstance(node, list):
        return [expand_env(item, environ, source) for item in node]
    if isinstance(node, dict):
        return {key: expand_env(item, environ, source) for key, item in node.items()}
    return node


def masked(channel: Channel) -> JsonObject:
    """The channel as the API shows it: URLs reduced to scheme and host, secrets hidden."""
    shown: JsonObject = channel.model_dump(mode="json")
    for name, value in channel:
        if isinstance(value, SecretStr):
            shown[name] = masked_url(value) if name.endswith("url") else MASK
    return shown


def masked_url(url: SecretStr) -> str:
    parts = urlsplit(url.get_secret_value())
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/{MASK}"


def _secret_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    )


# Per kind, the fields stored encrypted; a document of an unknown kind: all of them.
SECRET_FIELDS: dict[str, frozenset[str]] = {
    typing.get_args(model.model_fields["kind"].annotation)[0]: _secret_names(model)
    for model in (SlackChannel, TeamsChannel, EmailChannel, WebhookChannel)
}
_ALL = frozenset().union(*SECRET_FIELDS.values())


def seal_document(document: Mapping[str, JsonValue], box: SecretBox) -> JsonObject:
    """A stored channel document with its secret fields encrypted."""
    return transform(document, _secret_fields(document), box.seal)


def open_document(document: Mapping[str, JsonValue], box: SecretBox) -> JsonObject:
    """A stored channel document with its secret fields decrypted."""
    return transform(document, _secret_fields(document), box.open)


def _secret_fields(document: Mapping[str, JsonValue]) -> frozenset[str]:
    return SECRET_FIELDS.get(str(document.get("kind")), _ALL)


def channel_document(channel: Channel) -> JsonObject:
    """The channel with its secrets, for storage only (never for answers or logs)."""
    document: JsonObject = channel.model_dump(mode="json")
    for name, value in channel:
        if isinstance(value, SecretStr):
            document[name] = value.get_secret_value()
    return document
