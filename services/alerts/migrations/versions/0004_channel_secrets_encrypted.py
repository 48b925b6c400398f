"""Channel secrets encrypted at rest: the secret fields of stored channel documents
(webhook URLs, signing secrets, SMTP passwords) are sealed with VITALS_ALERTS_SECRETS_KEY.

The key is read from the environment like the service reads it (outside production,
unset: the key kept in var/alerts-secrets.key). No schema change: the column stays JSON.

Revision ID: alerts_0004
Revises: alerts_0003
Create Date: 2026-11-28
"""

import os
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from services.alerts.delivery.channels import open_document, seal_document
from services.alerts.delivery.sealing import SecretBox, box_for
from services.alerts.documents import JsonObject

revision: str = "alerts_0004"
down_revision: str | None = "alerts_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = sa.table("alert_channels", sa.column("id", sa.String), sa.column("document", sa.JSON))


def upgrade() -> None:
    _rewrite(seal_document)


def downgrade() -> None:
    _rewrite(open_document)


def _rewrite(change: Callable[[JsonObject, SecretBox], JsonObject]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(CHANNELS.c.id, CHANNELS.c.document)).all()
    if not rows:
        return  # no key needed (a new database)
    box = box_for(
        os.environ.get("VITALS_ALERTS_SECRETS_KEY"),
        os.environ.get("VITALS_ENVIRONMENT", "development"),
    )
    for channel_id, document in rows:
        changed = change(document, box)
        if changed != document:
            connection.execute(
                CHANNELS.update().where(CHANNELS.c.id == channel_id).values(document=changed)
            )
