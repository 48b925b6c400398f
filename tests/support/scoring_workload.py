"""A small, seeded, multi-account event workload and what a scoring database ended with."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from services.scoring.models import Account, DeadLetterOutbox, ScoreHistory, consumer_offsets
from shared.db import create_engine, session_factory
from shared.events import Event, PaymentOutcome, SubscriptionStatus
from tests.support.scoring_builders import NOW, billing, day, traits, usage

FEATURES = ["report.exported", "dashboard.shared", "integration.connected", "page.viewed", "x.y"]
# Parts of the state that record the path taken (the previous material score and what
# moved since it, how many material changes there were), not where it ended.
PATH_FIELDS = {"last", "drivers", "sequence"}


@dataclass(frozen=True)
class Workload:
    records: list[tuple[bytes, bytes]]
    distinct: int
    too_late: int


def workload(rng: random.Random, accounts: int) -> Workload:
    """Traits, billing and usage of ``accounts`` accounts over 20 days before NOW,
    interleaved across accounts, with repeats and events too late for their window."""
    streams: list[list[Event]] = []
    too_late = distinct = 0
    for n in range(accounts):
        stream = _account_events(rng, f"acct-{n:02d}")
        distinct += len(stream)
        for _ in range(rng.randint(0, 3)):  # repeats: delivered again, later
            repeat = rng.randrange(len(stream))
            stream.insert(rng.randint(repeat + 1, len(stream)), stream[repeat])
        if rng.random() < 0.3:
            stream.append(usage(account_id=f"acct-{n:02d}", at=NOW - timedelta(days=40)))
            too_late += 1
            distinct += 1
        streams.append(stream)
    merged: list[Event] = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        merged.append(stream.pop(0))
    records = [(e.account_id.encode(), e.to_bytes()) for e in merged]
    return Workload(records, distinct - too_late, too_late)


def _account_events(rng: random.Random, account_id: str) -> list[Event]:
    seats = rng.randint(2, 30)
    start = NOW - timedelta(days=20)
    events = [
        traits(
            account_id=account_id,
            at=start,
            name=account_id.upper(),
            segment=rng.choice(["smb", "mid", "enterprise"]),
            owner_csm_email=f"csm{rng.randint(1, 4)}@example.com",
        ),
        billing(
            account_id=account_id,
            at=start + timedelta(minutes=1),
            mrr_minor=rng.randint(10, 5000) * 100,
            seats=seats,
            plan=rng.choice(["team", "business"]),
            subscription_status=rng.choice(
                [SubscriptionStatus.active] * 6 + [SubscriptionStatus.past_due]
            ),
            subscription_started_on=day(-rng.randint(25, 400)),
            renewal_date=day(rng.randint(5, 300)),
        ),
    ]
    if rng.random() < 0.3:
        events.append(
            billing(
                account_id=account_id,
                at=NOW - timedelta(days=rng.randint(1, 15)),
                payment=PaymentOutcome.failed,
                invoice_due_on=day(-rng.randint(1, 15)),
            )
        )
    if rng.random() < 0.3:
        events.append(
            billing(
                account_id=account_id,
                at=NOW - timedelta(days=rng.randint(1, 10)),
                mrr_minor=rng.randint(10, 5000) * 100,
            )
        )
    if rng.random() < 0.3:  # ten times the seats on the last day: health drops sharply
        events.append(
            billing(
                account_id=account_id,
                at=NOW - timedelta(minutes=rng.randint(1, 10 * 60)),
                seats=seats * 10,
            )
        )
    latest = rng.randint(0, 25)  # days since the last usage: some accounts fall silent
    for _ in range(rng.randint(8, 40)):
        events.append(
            usage(
                account_id=account_id,
                at=NOW - timedelta(days=latest, minutes=rng.randint(1, 10 * 24 * 60)),
                user_id=f"u{rng.randint(1, seats + 3)}",
                feature=rng.choice(FEATURES),
            )
        )
    return sorted(events, key=lambda e: e.occurred_at)


@dataclass(frozen=True)
class DatabaseSnapshot:
    accounts: dict[str, dict[str, Any]]
    positions: int
    dead_letters: dict[str, int]
    sequences: dict[str, list[int]]
    unpublished: int


async def snapshot(database: str) -> DatabaseSnapshot:
    """What a scoring database holds: each account's end state (without the path fields)
    and API columns, the stored positions, dead letters by reason, history sequences."""
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            accounts = {
                row.account_id: _end_state(row) for row in await session.scalars(select(Account))
            }
            positions = await session.scalar(select(func.sum(consumer_offsets.c.next_offset)))
            letters = await session.execute(
                select(DeadLetterOutbox.reason, func.count()).group_by(DeadLetterOutbox.reason)
            )
            history = await session.execute(
                select(ScoreHistory.account_id, ScoreHistory.sequence).order_by(
                    ScoreHistory.account_id, ScoreHistory.sequence
                )
            )
            sequences: dict[str, list[int]] = {}
            for account_id, sequence in history:
                sequences.setdefault(account_id, []).append(sequence)
            unpublished = await session.scalar(
                select(func.count()).where(ScoreHistory.published_at.is_(None))
            )
    finally:
        await engine.dispose()
    return DatabaseSnapshot(
        accounts,
        int(positions or 0),
        {reason: int(count) for reason, count in letters},
        sequences,
        int(unpublished or 0),
    )


def _end_state(row: Account) -> dict[str, Any]:
    state = {k: v for k, v in row.state.items() if k not in PATH_FIELDS}
    state["seen_ids"] = {day: sorted(ids) for day, ids in state["seen_ids"].items()}  # sets
    columns = ("health_score", "band", "tier", "risk", "stage", "value_score", "stale", "mrr_minor")
    return {"state": state, **{name: getattr(row, name) for name in columns}}
