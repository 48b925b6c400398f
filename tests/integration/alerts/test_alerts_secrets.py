"""Channel secrets at rest, on real PostgreSQL: the table holds them encrypted, the API
masks them, deliveries still sign with them, and migration 0004 encrypts what an
older version stored in the clear."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import Connection, text
from standardwebhooks import Webhook

from services.alerts.app import MIGRATIONS
from services.alerts.configuration import load_files, sync_file_channels
from services.alerts.delivery import sealing
from services.alerts.delivery.channels import open_document
from services.alerts.delivery.sealing import SecretBox, SecretsKeyError
from services.alerts.models import ChannelRow
from services.alerts.settings import AlertsSettings
from shared.db import create_engine, session_factory
from shared.migrations import upgrade_to_head
from shared.scores import Tier
from tests.integration.alerts.conftest import ADMIN, StackFactory
from tests.integration.alerts.test_alerts_delivery import risky
from tests.support.alerts_receivers import HttpReceiver
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.postgres]

SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
TOKEN = "very-secret-token"
SLACK_TOKEN = "T0001/B0002/slack-secret-token"
KEY = Fernet.generate_key().decode()


async def _raw_documents(database: str) -> dict[str, str]:
    """The channel documents as PostgreSQL holds them, past every ORM type."""
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id, document::text FROM alert_channels"))
            return {row[0]: row[1] for row in rows}
    finally:
        await engine.dispose()


async def _has(items: list[Any], count: int) -> bool:
    return len(items) >= count


@pytest.mark.kafka
async def test_secrets_are_encrypted_in_the_table_masked_in_answers_and_still_sign(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url:
        channels = {
            "channels": [
                {"id": "crm", "kind": "webhook", "url": f"{url}/hook?token={TOKEN}"}
                | {"secret": SIGNING_SECRET},
                {"id": "cs", "kind": "slack", "webhook_url": f"{url}/services/{SLACK_TOKEN}"},
            ],
            "route": {"receivers": ["crm"]},
        }
        overrides = {"alerts_secrets_key": KEY}
        async with alerts_stack(channels=channels, **overrides) as stack:
            put = await stack.api.put(
                "/v1/channels/api-hook",
                json={"kind": "webhook", "url": f"{url}/api?token={TOKEN}", "secret": API_SECRET},
                headers=ADMIN,
            )
            listed = await stack.api.get("/v1/channels", headers=ADMIN)
            await stack.send(risky("acme", Tier.A, stack.clock))
            await wait_for(lambda: _has(receiver.at("/hook"), 1), 30, "the signed webhook")
            tested = await stack.api.post("/v1/channels/api-hook/test", headers=ADMIN)
            stored = await _raw_documents(stack.database)

    assert put.status_code == 200 and tested.json() == {"delivered": True, "error": None}
    assert set(stored) == {"crm", "cs", "api-hook"}
    for document in stored.values():
        for secret in (SIGNING_SECRET, API_SECRET, TOKEN, SLACK_TOKEN, "MfKQ9r8", "C2FVsBQ"):
            assert secret not in document
        assert "fernet:" in document
    assert orjson.loads(stored["crm"])["id"] == "crm"  # the rest stays readable
    shown = {c["id"]: c["config"] for c in listed.json()["channels"]}
    assert (shown["crm"]["url"], shown["crm"]["secret"]) == ("http://127.0.0.1/****", "****")
    assert (shown["api-hook"]["url"], shown["api-hook"]["secret"]) == (
        "http://127.0.0.1/****",
        "****",
    )
    assert shown["cs"]["webhook_url"] == "http://127.0.0.1/****"
    (delivery,) = receiver.at("/hook")
    event = Webhook(SIGNING_SECRET).verify(delivery.body, delivery.headers)
    assert event["account_id"] == "acme"
    (test_notice,) = receiver.at("/api")
    Webhook(API_SECRET).verify(test_notice.body, test_notice.headers)


PLAIN = {
    "id": "crm",
    "kind": "webhook",
    "url": f"https://crm.example.com/hooks?token={TOKEN}",
    "secret": SIGNING_SECRET,
    "enabled": True,
}


async def _migrate(database: str, step: Callable[[Any, str], None], revision: str) -> None:
    engine = create_engine(database)
    config = MIGRATIONS.config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        step(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def _insert_plain(database: str) -> None:
    engine = create_engine(database)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO alert_channels (id, source, document, updated_at) "
                    "VALUES ('crm', 'api', CAST(:document AS json), now())"
                ),
                {"document": orjson.dumps(PLAIN).decode()},
            )
    finally:
        await engine.dispose()


async def _read_channel(database: str, box: SecretBox) -> dict[str, Any]:
    engine = create_engine(database)
    try:
        with sealing.using(box):
            async with session_factory(engine)() as session:
                row = await session.get(ChannelRow, "crm")
                assert row is not None
                return row.document
    finally:
        await engine.dispose()


async def test_migration_0004_encrypts_what_was_stored_in_the_clear_and_0003_decrypts_it(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALS_ALERTS_SECRETS_KEY", KEY)
    await _migrate(database, command.upgrade, "alerts_0003")
    await _insert_plain(database)

    await _migrate(database, command.upgrade, "alerts_0004")
    sealed = await _raw_documents(database)
    read = await _read_channel(database, SecretBox([KEY]))
    with pytest.raises(SecretsKeyError, match="replaced instead of rotated"):
        await _read_channel(database, SecretBox([Fernet.generate_key().decode()]))
    await _migrate(database, command.downgrade, "alerts_0003")
    plain_again = await _raw_documents(database)

    assert TOKEN not in sealed["crm"] and "MfKQ9r8" not in sealed["crm"]
    assert orjson.loads(sealed["crm"])["url"].startswith("fernet:")
    assert read == PLAIN
    assert orjson.loads(plain_again["crm"]) == PLAIN


async def test_a_rotated_key_seals_every_channel_again_at_start(database: str) -> None:
    old, new = KEY, Fernet.generate_key().decode()
    engine = create_engine(database)
    await upgrade_to_head(engine, MIGRATIONS)
    sessions = session_factory(engine)
    settings: dict[str, Any] = {
        "environment": "test",
        "alerts_webhook_url": f"https://hooks.example.com/x?token={TOKEN}",
        "alerts_webhook_secret": SIGNING_SECRET,
    }
    now = datetime.now(UTC)
    try:
        files = load_files(AlertsSettings(alerts_secrets_key=old, **settings))
        async with sessions() as session, session.begin():
            await sync_file_channels(session, files, now)
            session.add(ChannelRow(id="crm", source="api", document=PLAIN, updated_at=now))
        before = await _raw_documents(database)
        files = load_files(AlertsSettings(alerts_secrets_key=f"{new},{old}", **settings))
        async with sessions() as session, session.begin():
            await sync_file_channels(session, files, now)
        after = await _raw_documents(database)
    finally:
        await engine.dispose()

    only_new = SecretBox([new])
    with pytest.raises(SecretsKeyError):
        open_document(orjson.loads(before["crm"]), only_new)
    opened = {key: open_document(orjson.loads(raw), only_new) for key, raw in after.items()}
    assert opened["crm"] == PLAIN
    assert (opened["webhook"]["url"], opened["webhook"]["secret"]) == (
        settings["alerts_webhook_url"],
        SIGNING_SECRET,
    )


async def test_migration_0004_needs_no_key_for_an_empty_table(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALS_ENVIRONMENT", "production")
    monkeypatch.delenv("VITALS_ALERTS_SECRETS_KEY", raising=False)

    await _migrate(database, command.upgrade, "alerts_0004")

    assert await _raw_documents(database) == {}
