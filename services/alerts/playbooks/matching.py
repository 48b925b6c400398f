"""Which playbooks a score change and its alert decisions start. Pure: no I/O.

Each start names its trigger episode, so the tasks it makes have ids derived from
(playbook, step, account, episode): a replayed message starts the same episode
again and the tasks it would make already exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.alerts.playbooks.model import (
    AlertOpened,
    Manual,
    Match,
    Playbook,
    StageEntered,
    TierChanged,
)
from services.alerts.rules import engine
from shared.scores import ScoreChange


@dataclass(frozen=True)
class Start:
    """One playbook started for one account in one trigger episode."""

    playbook: Playbook
    episode: str
    alert_id: str | None = None


def starts(
    playbooks: list[Playbook], change: ScoreChange, decisions: list[engine.Decision]
) -> list[Start]:
    """The playbooks ``change`` (and the alert decisions made on it) start."""
    found: list[Start] = []
    for playbook in playbooks:
        if not matches(playbook.match, change):
            continue
        found.extend(_triggered(playbook, change, decisions))
    return found


def matches(match: Match, change: ScoreChange) -> bool:
    checks = (
        (match.tier, change.tier),
        (match.stage, change.stage),
        (match.risk, change.risk),
        (match.segment, change.account.segment),
    )
    return all(_among(allowed, value) for allowed, value in checks)


def _among(allowed: Sequence[str] | None, value: str | None) -> bool:
    if allowed is None:
        return True
    return value is not None and value.casefold() in {a.casefold() for a in allowed}


def _triggered(
    playbook: Playbook, change: ScoreChange, decisions: list[engine.Decision]
) -> list[Start]:
    trigger = playbook.trigger
    if isinstance(trigger, AlertOpened):
        return [
            Start(playbook, f"alert:{d.alert.id}", d.alert.id)
            for d in decisions
            if d.transition is engine.Transition.opened
            and d.alert.rule == trigger.rule
            and _has_reason(change, trigger.reason_contains)
        ]
    if isinstance(trigger, StageEntered):
        entered = change.stage == trigger.stage and change.previous_stage != trigger.stage
        return (
            [Start(playbook, f"stage:{trigger.stage.value}:{change.sequence}")] if entered else []
        )
    if isinstance(trigger, TierChanged):
        direction = tier_direction(change)
        if direction is None or direction not in trigger.directions:
            return []
        return [Start(playbook, f"tier:{direction}:{change.sequence}")]
    assert isinstance(trigger, Manual)
    return []


def tier_direction(change: ScoreChange) -> str | None:
    """``up`` or ``down`` when the tier moved with this change, else None."""
    if change.tier is None or change.previous_tier is None or change.tier == change.previous_tier:
        return None
    rank = engine.TIER_ORDER.index
    return "up" if rank(change.tier) > rank(change.previous_tier) else "down"


def _has_reason(change: ScoreChange, text: str | None) -> bool:
    if text is None:
        return True
    return any(text.casefold() in reason.casefold() for reason in change.risk_reasons)
