"""Keyword-only builders of test data, with safe defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import Billing, Event, EventKind, SubscriptionStatus
from shared.scores import Band, ScoreChange

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def usage_event(
    *,
    account_id: str = "acme",
    user_id: str | None = "u1",
    occurred_at: datetime = T0,
    event_id: str | None = None,
    name: str = "report.exported",
) -> Event:
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        account_id=account_id,
        kind=EventKind.usage,
        name=name,
        occurred_at=occurred_at,
        received_at=occurred_at,
        user_id=user_id,
    )


def billing_event(
    *,
    account_id: str = "acme",
    status: SubscriptionStatus = SubscriptionStatus.active,
    seats: int | None = 10,
    mrr_minor: int | None = 100_000,
    occurred_at: datetime = T0,
    event_id: str | None = None,
) -> Event:
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        account_id=account_id,
        kind=EventKind.billing,
        name="subscription.updated",
        occurred_at=occurred_at,
        received_at=occurred_at,
        billing=Billing(
            subscription_status=status, seats=seats, mrr_minor=mrr_minor, currency="EUR"
        ),
    )


def native_usage_json(*, account_id: str = "acme", **fields: Any) -> dict[str, Any]:
    """A usage event as a sender posts it to ``POST /v1/events``."""
    return {
        "account_id": account_id,
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": "u1",
        **fields,
    }


def score_change(
    *,
    account_id: str = "acme",
    sequence: int = 1,
    health_score: int = 80,
    previous_score: int | None = None,
    computed_at: datetime = T0,
) -> ScoreChange:
    band = Band.green if health_score >= 70 else Band.yellow if health_score >= 40 else Band.red
    return ScoreChange(
        account_id=account_id,
        sequence=sequence,
        health_score=health_score,
        band=band,
        previous_score=previous_score,
        components={"recency": health_score},
        computed_at=computed_at,
    )
