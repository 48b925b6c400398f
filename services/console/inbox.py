"""The alerts inbox as a CSM triages it: the most severe first, then the most valuable
tier (S A B C), then the oldest; tier-up notices (good news, no action) folded apart.
Pure: the API's alerts in, the page's rows out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.alerts.schemas import AlertRead

LEVELS = ("high", "medium", "low")
"""Severity levels, in their natural order."""
LEVEL_OF = {
    "high": "high",
    "red": "high",
    "medium": "medium",
    "yellow": "medium",
    "drop": "medium",
    "silent": "medium",
    "down": "medium",
}
"""A rule's severity (``severity`` of an alert) as a level; anything else is low (a
tier up, a severity a newer rule names)."""
TIERS = ("S", "A", "B", "C")
TIER_UP = "up"
STATES = ("open", "snoozed", "resolved")
"""The inbox's tabs: open and not snoozed now, snoozed now, resolved."""


def level(alert: AlertRead) -> str:
    return LEVEL_OF.get(alert.severity, "low")


def _key(alert: AlertRead) -> tuple[bool, int, int, datetime, str]:
    tier = TIERS.index(alert.tier) if alert.tier in TIERS else len(TIERS)
    acked = alert.acked_at is not None and alert.state == "open"
    return (acked, LEVELS.index(level(alert)), tier, alert.opened_at, alert.id)


@dataclass(frozen=True)
class Inbox:
    rows: list[AlertRead]
    """Sorted: unacknowledged first, then severity, tier and age (oldest first)."""
    tier_ups: list[AlertRead]
    """Tier-up notices, sorted the same way, shown folded."""


def triaged(alerts: Iterable[AlertRead], fold_tier_ups: bool = True) -> Inbox:
    ordered = sorted(alerts, key=_key)
    if not fold_tier_ups:
        return Inbox(ordered, [])
    ups = [a for a in ordered if a.severity == TIER_UP]
    return Inbox([a for a in ordered if a.severity != TIER_UP], ups)
