"""Queries of the alerts service. The caller owns the session and the commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import JsonValue
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.models import (
    AccountCursor,
    Alert,
    AlertEventRow,
    ChannelRow,
    ConfigDocument,
    ConfigRevision,
    Delivery,
    Silence,
)
from shared.outbox import Backlog, OutboxRecord, backlog_of


async def load_cursors(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[str, AccountCursor]:
    rows = await session.scalars(
        select(AccountCursor).where(AccountCursor.account_id.in_(set(account_ids)))
    )
    return {row.account_id: row for row in rows}


async def latest_alerts(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[str, dict[str, Alert]]:
    """Per account, the newest episode of each rule, open or resolved."""
    accounts = set(account_ids)
    newest = (
        select(Alert.account_id, Alert.rule, func.max(Alert.episode).label("episode"))
        .where(Alert.account_id.in_(accounts))
        .group_by(Alert.account_id, Alert.rule)
        .subquery()
    )
    rows = await session.scalars(
        select(Alert).join(
            newest,
            (Alert.account_id == newest.c.account_id)
            & (Alert.rule == newest.c.rule)
            & (Alert.episode == newest.c.episode),
        )
    )
    found: dict[str, dict[str, Alert]] = defaultdict(dict)
    for row in rows:
        found[row.account_id][row.rule] = row
    return found


async def active_silences(session: AsyncSession, now: datetime) -> Sequence[Silence]:
    return (await session.scalars(select(Silence).where(Silence.ends_at > now))).all()


async def list_silences(
    session: AsyncSession, include_expired: bool, now: datetime
) -> Sequence[Silence]:
    query = select(Silence).order_by(Silence.ends_at.desc(), Silence.id)
    if not include_expired:
        query = query.where(Silence.ends_at > now)
    return (await session.scalars(query)).all()


async def channel_rows(session: AsyncSession, *, lock: bool = False) -> Sequence[ChannelRow]:
    """Every channel; ``lock``: held until the commit, so no API change is overwritten."""
    query = select(ChannelRow).order_by(ChannelRow.id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).all()


async def channel_row(
    session: AsyncSession, channel_id: str, *, lock: bool = False
) -> ChannelRow | None:
    """One channel; ``lock``: held until the commit, so no other change is overwritten."""
    return await session.get(ChannelRow, channel_id, with_for_update=lock)


async def config_document(session: AsyncSession, key: str) -> ConfigDocument | None:
    return await session.get(ConfigDocument, key)


async def save_config_document(
    session: AsyncSession, key: str, document: dict[str, JsonValue], now: datetime
) -> None:
    row = await config_document(session, key)
    if row is None:
        session.add(ConfigDocument(key=key, document=document, updated_at=now))
    else:
        row.document, row.updated_at = document, now


async def delete_config_document(session: AsyncSession, key: str) -> None:
    await session.execute(delete(ConfigDocument).where(ConfigDocument.key == key))


async def config_revision(session: AsyncSession) -> int:
    """The revision of channels, routes and rules: the one read a batch makes when
    nothing changed."""
    return (await session.scalars(select(ConfigRevision.revision))).one()


async def raise_config_revision(session: AsyncSession) -> None:
    """The first statement of every transaction that changes channels, routes or rules:
    each replica parses them again at its next batch. The row stays locked until the
    commit, so two such transactions take turns and never wait on each other's
    channel rows."""
    await session.execute(
        update(ConfigRevision)
        .values(revision=ConfigRevision.revision + 1)
        .execution_options(synchronize_session=False)
    )


async def due_deliveries(session: AsyncSession, now: datetime, limit: int) -> Sequence[Delivery]:
    """Pending deliveries whose time has come, locked so no other replica sends them."""
    rows = await session.scalars(
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.created_at, Delivery.ordinal, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return rows.all()


@dataclass(frozen=True)
class AlertFilter:
    state: str | None = None
    rule: str | None = None
    tier: str | None = None
    owner: str | None = None
    account_id: str | None = None
    snoozed_at: datetime | None = None
    """With ``snoozed``: the time a snooze is judged at."""
    snoozed: bool | None = None
    """True: only alerts snoozed at ``snoozed_at``; False: only those not snoozed then."""


async def list_alerts(
    session: AsyncSession,
    where: AlertFilter,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> Sequence[Alert]:
    """Newest first (opened_at descending, then id), from after ``after`` (a keyset page's
    last alert: its opened_at and id)."""
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id).limit(limit)
    if after is not None:
        opened_at, alert_id = after
        query = query.where(
            or_(
                Alert.opened_at < opened_at, and_(Alert.opened_at == opened_at, Alert.id > alert_id)
            )
        )
    for column, value in (
        (Alert.state, where.state),
        (Alert.rule, where.rule),
        (Alert.tier, where.tier),
        (Alert.account_id, where.account_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.owner is not None:
        owner = where.owner.casefold()
        query = query.where(
            or_(func.lower(Alert.owner_email) == owner, func.lower(Alert.owner_slack) == owner)
        )
    if where.snoozed is not None and where.snoozed_at is not None:
        asleep = Alert.snoozed_until > where.snoozed_at
        query = query.where(
            asleep if where.snoozed else or_(Alert.snoozed_until.is_(None), ~asleep)
        )
    return (await session.scalars(query)).all()


async def open_alerts(session: AsyncSession) -> Sequence[Alert]:
    query = select(Alert).where(Alert.state == "open").order_by(Alert.account_id, Alert.rule)
    return (await session.scalars(query)).all()


async def list_deliveries(
    session: AsyncSession,
    status: str | None,
    channel: str | None,
    alert_id: str | None,
    limit: int,
) -> Sequence[Delivery]:
    query = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id).limit(limit)
    for column, value in (
        (Delivery.status, status),
        (Delivery.channel, channel),
        (Delivery.alert_id, alert_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return (await session.scalars(query)).all()


async def outbox_backlog(session: AsyncSession) -> tuple[int, datetime | None, int]:
    """Pending deliveries, the oldest one's creation time, and dead deliveries."""
    pending = await session.execute(
        select(func.count(), func.min(Delivery.created_at)).where(Delivery.status == "pending")
    )
    count, oldest = pending.one()
    dead = await session.scalar(select(func.count()).where(Delivery.status == "dead"))
    return int(count), oldest, int(dead or 0)


class AlertEventsOutbox:
    """The outbox of ``vitals.alerts`` (``shared.outbox.OutboxTable``): transitions in
    the order they were decided; replicas skip each other's locked rows."""

    async def claim(self, session: AsyncSession, limit: int) -> list[OutboxRecord]:
        rows = await session.scalars(
            select(AlertEventRow)
            .where(AlertEventRow.published_at.is_(None))
            .order_by(AlertEventRow.created_at, AlertEventRow.ordinal, AlertEventRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            OutboxRecord(
                row.id, row.account_id.encode(), orjson.dumps({"event_id": row.id, **row.event})
            )
            for row in rows
        ]

    async def mark_sent(
        self, session: AsyncSession, row_ids: list[int | str], now: datetime
    ) -> None:
        await session.execute(
            update(AlertEventRow)
            .where(AlertEventRow.id.in_([str(i) for i in row_ids]))
            .values(published_at=now)
            .execution_options(synchronize_session=False)
        )

    async def backlog(self, session: AsyncSession) -> Backlog:
        return await backlog_of(
            session, AlertEventRow.published_at.is_(None), AlertEventRow.created_at
        )
