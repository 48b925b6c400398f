"""Builders for scoring tests: events with every billing fact, scorecards, a clock start."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from services.scoring.scorecard import Scorecard, ScorecardSet, load_scorecards
from shared.events import AccountTraits, Billing, Event, EventKind

DEFAULT_SCORECARDS = Path(__file__).parents[2] / "services" / "scoring" / "scorecards"
V1_SCORECARD = DEFAULT_SCORECARDS / "previous" / "default-v1.yaml"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def default_scorecards() -> ScorecardSet:
    return load_scorecards(DEFAULT_SCORECARDS)


def default_card() -> Scorecard:
    return default_scorecards().default


def v1_card() -> Scorecard:
    """Version 1 of the default scorecard: still loadable, and its behaviour pinned."""
    return load_scorecards(V1_SCORECARD).default


def usage(
    *,
    account_id: str = "acme",
    at: datetime = NOW,
    user_id: str | None = "u1",
    feature: str | None = None,
    name: str = "page.viewed",
    event_id: str | None = None,
    received_at: datetime | None = None,
) -> Event:
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        account_id=account_id,
        kind=EventKind.usage,
        name=name,
        occurred_at=at,
        received_at=received_at or at,
        user_id=user_id,
        feature=feature,
    )


def billing(
    *,
    account_id: str = "acme",
    at: datetime = NOW,
    event_id: str | None = None,
    **facts: Any,
) -> Event:
    if ("mrr_minor" in facts or "amount_minor" in facts) and "currency" not in facts:
        facts["currency"] = "EUR"
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        account_id=account_id,
        kind=EventKind.billing,
        name="billing.updated",
        occurred_at=at,
        received_at=at,
        billing=Billing(**facts),
    )


def traits(
    *, account_id: str = "acme", at: datetime = NOW, event_id: str | None = None, **fields: Any
) -> Event:
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        account_id=account_id,
        kind=EventKind.account,
        name="account.updated",
        occurred_at=at,
        received_at=at,
        traits=AccountTraits(**fields),
    )


def day(offset: int) -> date:
    """A date relative to NOW's."""
    return date.fromordinal(NOW.date().toordinal() + offset)
