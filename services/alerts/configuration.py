"""What the alerts service runs with: rules, channels and routes, from files and the API.

Files (and ``VITALS_ALERTS_WEBHOOK_URL``) are read and validated at start-up, so a
bad file stops the service with an error naming the field. Channels are kept in the
database so every replica and the admin API see the same set: file channels are
written there at start-up (``source`` file/env), API channels have ``source`` api.
A routing tree or rule set saved through the API overrides the file's. Channel
secrets are encrypted in the database with the key of the settings (delivery/sealing.py).

Every change to channels, routes or rules raises the configuration revision in its own
transaction (``repository.raise_config_revision``); a :class:`SetupCache` reads that
one number each batch and parses the setup again only when it moved, so each replica
sees another's change at its next batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from services.alerts import repository
from services.alerts.delivery import sealing
from services.alerts.delivery.channels import (
    Channel,
    WebhookChannel,
    channel_document,
    parse_channel,
    parse_channels_file,
)
from services.alerts.delivery.routing import RoutingTree, parse_routes
from services.alerts.delivery.ssrf import TargetPolicy, TargetRefused
from services.alerts.documents import ConfigError, load_yaml
from services.alerts.models import ChannelRow
from services.alerts.rules.kinds import Rule
from services.alerts.rules.ruleset import RuleSet, load_rules, parse_rules
from services.alerts.settings import AlertsSettings

ENV_CHANNEL = "webhook"
ROUTES_KEY = "routes"
RULES_KEY = "rules"


@dataclass(frozen=True)
class FileConfig:
    rules: RuleSet
    channels: list[Channel]
    route: RoutingTree | None
    policy: TargetPolicy


def load_files(settings: AlertsSettings) -> FileConfig:
    """Rules, channels and routes from the files and settings; raises ConfigError.

    Also puts the settings' secrets key in use, before anything reads or writes a
    channel row."""
    sealing.use(secret_box(settings))
    rules = load_rules(settings.alerts_rules_file)
    channels: list[Channel] = []
    route = None
    if settings.alerts_channels_file is not None:
        path = settings.alerts_channels_file
        channels, route = parse_channels_file(load_yaml(path), str(path))
    trusted: list[str] = []
    if settings.alerts_webhook_url is not None:
        if any(c.id == ENV_CHANNEL for c in channels):
            raise ConfigError(
                f"channel id {ENV_CHANNEL!r} is taken by VITALS_ALERTS_WEBHOOK_URL; rename it"
            )
        url = str(settings.alerts_webhook_url)
        trusted.append(url)
        secret = settings.alerts_webhook_secret
        channels.append(
            WebhookChannel(kind="webhook", id=ENV_CHANNEL, url=SecretStr(url), secret=secret)
        )
    policy = TargetPolicy.build(
        allow_http=settings.alerts_allow_http_targets,
        allow=settings.target_allowlist,
        trusted_urls=trusted,
        certificates_dir=settings.alerts_certificates_dir,
    )
    for channel in channels:
        try:
            channel.check_target(policy)
        except TargetRefused as exc:
            raise ConfigError(f"channel {channel.id}: target refused: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"channel {channel.id}: {exc}") from None
    return FileConfig(rules, channels, route, policy)


def secret_box(settings: AlertsSettings) -> sealing.SecretBox:
    key = settings.alerts_secrets_key
    try:
        return sealing.box_for(key.get_secret_value() if key else None, settings.environment)
    except (sealing.SecretsKeyError, OSError) as exc:
        raise ConfigError(f"secrets key: {exc}") from None


async def sync_file_channels(session: AsyncSession, files: FileConfig, now: datetime) -> None:
    """Make the database's file and env channels exactly those of the files; while keys
    are rotated, store every channel's secrets again with the first key."""
    await repository.raise_config_revision(session)
    rows = {row.id: row for row in await repository.channel_rows(session, lock=True)}
    if sealing.in_use().rotating:
        for row in rows.values():
            flag_modified(row, "document")  # written again: sealed with the first key
    wanted = {c.id: c for c in files.channels}
    for channel_id, row in rows.items():
        if row.source != "api" and channel_id not in wanted:
            await session.delete(row)
    for channel in files.channels:
        source = "env" if channel.id == ENV_CHANNEL else "file"
        document = channel_document(channel)
        existing = rows.get(channel.id)
        if existing is None:
            session.add(ChannelRow(id=channel.id, source=source, document=document, updated_at=now))
        elif existing.document != document or existing.source != source:
            existing.document, existing.source = document, source
            existing.disabled_reason, existing.updated_at = None, now


@dataclass(frozen=True)
class Setup:
    """Rules, channels and routes in force for one batch or one dispatch round."""

    rules: list[Rule]
    channels: dict[str, Channel]
    sources: dict[str, str]
    disabled: dict[str, str]
    paused: dict[str, datetime]
    route: RoutingTree
    route_source: str
    rules_source: str


class SetupCache:
    """The setup in force, shared by a replica's consumer, dispatcher and API, parsed
    again only when the configuration revision moved."""

    def __init__(self, files: FileConfig) -> None:
        self.files = files
        self._parsed: tuple[int, Setup] | None = None

    async def current(self, session: AsyncSession) -> Setup:
        # The revision is read first, so what is parsed after it is at least that new:
        # a change committed in between only makes the next batch parse once more.
        revision = await repository.config_revision(session)
        if self._parsed is not None and self._parsed[0] == revision:
            return self._parsed[1]
        setup = await load_setup(session, self.files)
        # Revisions only grow: a round that read an older one leaves a newer setup in place.
        if self._parsed is None or self._parsed[0] < revision:
            self._parsed = (revision, setup)
        return setup


async def load_setup(session: AsyncSession, files: FileConfig) -> Setup:
    """Channels, routes and rules parsed from the database and the files."""
    channels: dict[str, Channel] = {}
    sources: dict[str, str] = {}
    disabled: dict[str, str] = {}
    paused: dict[str, datetime] = {}
    for row in await repository.channel_rows(session):
        channels[row.id] = parse_channel(row.document, f"channel {row.id}")
        sources[row.id] = row.source
        if row.disabled_reason:
            disabled[row.id] = row.disabled_reason
        if row.paused_until is not None:
            paused[row.id] = row.paused_until
    route, route_source = await _route(session, files, set(channels))
    stored_rules = await repository.config_document(session, RULES_KEY)
    rules, rules_source = files.rules, "file"
    if stored_rules is not None:
        rules, rules_source = parse_rules(stored_rules.document, "stored rules"), "api"
    return Setup(
        rules.enabled, channels, sources, disabled, paused, route, route_source, rules_source
    )


async def _route(
    session: AsyncSession, files: FileConfig, channel_ids: set[str]
) -> tuple[RoutingTree, str]:
    stored = await repository.config_document(session, ROUTES_KEY)
    if stored is not None:
        try:
            return parse_routes(stored.document, channel_ids, "stored routes"), "api"
        except ConfigError:
            pass  # a channel it names was removed since: fall back, the API shows why
    if files.route is not None and files.route.referenced() <= channel_ids:
        return files.route, "file"
    return RoutingTree(receivers=sorted(channel_ids)), "default"
