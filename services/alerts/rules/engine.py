"""The rule engine: a score change and what alerts remember in, alert decisions out.

Pure: no I/O, no clock of its own (``now`` is passed in). Per (account, rule) there is
at most one open alert; its id is derived from (account, rule, episode), so a
repeated score message can never create a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import singledispatch

from pydantic import JsonValue

from services.alerts.documents import JsonObject
from services.alerts.rules.kinds import (
    RISK_ORDER,
    AccountSilent,
    ChurnRiskRaised,
    RenewalAtRisk,
    Rule,
    RuleBase,
    SharpHealthDrop,
    TierChanged,
)
from shared.scores import Risk, ScoreChange, Stage, Tier, Trigger

ALERT_ID_NAMESPACE = uuid.UUID("1f6f3f3c-6c3b-4c55-9d1e-6a0e7c1f2b51")
TIER_ORDER = (Tier.C, Tier.B, Tier.A, Tier.S)


class AlertState(StrEnum):
    open = "open"
    resolved = "resolved"


class Transition(StrEnum):
    opened = "opened"
    escalated = "escalated"
    reminded = "reminded"
    resolved = "resolved"


@dataclass(frozen=True)
class Alert:
    """What the engine knows of one episode of an (account, rule) alert."""

    id: str
    account_id: str
    rule: str
    episode: int
    state: AlertState
    severity: str
    opened_at: datetime
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    notifications: int = 0
    acked_at: datetime | None = None
    snoozed_until: datetime | None = None


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one message.

    ``firing``: True, the condition holds; False, it has cleared; None, inside the
    hysteresis band, so the alert keeps its state. ``fresh`` marks a new
    occurrence of an event-like condition (a tier change), which starts a new episode.
    """

    firing: bool | None
    severity: str = ""
    summary: str = ""
    details: JsonObject = field(default_factory=dict)
    fresh: bool = False
    quiet: bool = False  # clears without a resolved notice: the alert became moot


@dataclass(frozen=True)
class Decision:
    transition: Transition
    alert: Alert
    notify: bool
    summary: str
    details: JsonObject


HealthHistory = list[tuple[datetime, int]]


def alert_id(account_id: str, rule: str, episode: int) -> str:
    """The same (account, rule, episode) always gives the same id, on any replica."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{account_id}\x1f{rule}\x1f{episode}"))


def notice_id(alert: str, notification: int, channel: str) -> str:
    """Id of the n-th notice of an alert to a channel: the webhook-id, stable across retries."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{alert}\x1f{notification}\x1f{channel}"))


def digest_id(channel: str, day: str, owner: str) -> str:
    """Id of one day's digest for one owner on one channel: queued once by any replica."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"digest\x1f{channel}\x1f{day}\x1f{owner}"))


def event_id(alert: str, transition: str, sequence: int) -> str:
    """Id of one transition on ``vitals.alerts``: the same after any replay."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{alert}\x1f{transition}\x1f{sequence}"))


DECISIONS_PER_MESSAGE = 1024


def ordinal(sequence: int, index: int) -> int:
    """Where the ``index``-th decision on an account's score message ``sequence`` stands
    among that account's decisions: the order its notices and events go out in, the same
    after any replay."""
    return sequence * DECISIONS_PER_MESSAGE + min(index, DECISIONS_PER_MESSAGE - 1)


# --- conditions -------------------------------------------------------------------


def check(
    rule: Rule,
    change: ScoreChange,
    history: HealthHistory,
    current: Alert | None,
    risk_absent_high_below: int = 0,
) -> Finding:
    """Whether ``rule``'s condition holds for ``change``.

    ``risk_absent_high_below``: for messages from scoring before churn risk existed,
    a health below this counts as high risk (0: such messages are not judged).
    """
    if change.stage is Stage.churned:
        return Finding(False, summary="Account cancelled", quiet=True)
    if change.stage is Stage.onboarding and not rule.judged_in_onboarding:
        return Finding(None)  # too new to judge: scores move as usage starts
    return check_kind(rule, change, Seen(history, current, risk_absent_high_below))


@dataclass(frozen=True)
class Seen:
    """What a rule may need besides the change: the account's recent health, the rule's
    newest alert, and the health under which a change without a risk is high risk."""

    history: HealthHistory
    current: Alert | None
    risk_absent_high_below: int


# Each kind of rule's condition, found by the rule's class.
@singledispatch
def check_kind(rule: RuleBase, change: ScoreChange, seen: Seen) -> Finding:
    raise NotImplementedError(f"no condition for rule kind {type(rule).__name__}")


@check_kind.register
def _churn_risk(rule: ChurnRiskRaised, change: ScoreChange, seen: Seen) -> Finding:
    return check_churn_risk(rule, change, seen.risk_absent_high_below)


@check_kind.register
def _health_drop(rule: SharpHealthDrop, change: ScoreChange, seen: Seen) -> Finding:
    return check_health_drop(rule, change, seen.history)


@check_kind.register
def _tier_change(rule: TierChanged, change: ScoreChange, seen: Seen) -> Finding:
    return check_tier_change(rule, change, seen.current)


@check_kind.register
def _silence(rule: AccountSilent, change: ScoreChange, seen: Seen) -> Finding:
    return check_silence(rule, change)


@check_kind.register
def _renewal(rule: RenewalAtRisk, change: ScoreChange, seen: Seen) -> Finding:
    return check_renewal(rule, change)


def check_churn_risk(
    rule: ChurnRiskRaised, change: ScoreChange, risk_absent_high_below: int = 0
) -> Finding:
    risk, reasons = change.risk, list(change.risk_reasons)
    if risk is None:
        risk = Risk.high if change.health_score < risk_absent_high_below else Risk.low
        reasons = reasons or [f"health {change.health_score} below {risk_absent_high_below}"]
    level = RISK_ORDER.index(risk)
    if level >= RISK_ORDER.index(rule.min_risk):
        moved = f"{change.previous_risk.value} -> " if change.previous_risk else ""
        because = "; ".join(reasons) or "no reason given"
        summary = f"Churn risk {moved}{risk.value}: {because}"
        details: JsonObject = {
            "risk": risk.value,
            "previous_risk": change.previous_risk.value if change.previous_risk else None,
            "risk_reasons": list(reasons),
            "drivers": top_drivers(change, rule.top_drivers),
        }
        return Finding(True, risk.value, summary, details)
    if level <= RISK_ORDER.index(rule.resolve_at):
        return Finding(False, summary=f"Churn risk back to {risk.value}")
    return Finding(None)


def check_health_drop(
    rule: SharpHealthDrop, change: ScoreChange, history: HealthHistory
) -> Finding:
    since = change.computed_at - rule.within
    earlier = [(at, score) for at, score in history if since <= at < change.computed_at]
    if not earlier:
        return Finding(False, summary="No earlier score to compare with")
    peak_at, peak = max(earlier, key=lambda point: (point[1], point[0]))
    drop = peak - change.health_score
    if drop >= rule.points and change.band in rule.bands:
        days = _days(change.computed_at - peak_at)
        summary = f"Health fell {drop} points in {days}: {peak} -> {change.health_score}"
        details: JsonObject = {
            "drop": drop,
            "from_score": peak,
            "from_at": peak_at.isoformat(),
            "drivers": top_drivers(change, rule.top_drivers),
        }
        return Finding(True, "drop", summary, details)
    if drop < rule.points - rule.hysteresis_points:
        return Finding(False, summary=f"Health steady at {change.health_score}")
    if change.band not in rule.bands:  # an open drop closes once the band needs no one
        return Finding(
            False, summary=f"Health back to {change.band.value} at {change.health_score}"
        )
    return Finding(None)


def check_tier_change(rule: TierChanged, change: ScoreChange, current: Alert | None) -> Finding:
    tier, before = change.tier, change.previous_tier
    changed = tier is not None and before is not None and tier != before
    if changed and change.trigger is not Trigger.override:
        assert tier is not None and before is not None
        direction = "up" if TIER_ORDER.index(tier) > TIER_ORDER.index(before) else "down"
        if direction in rule.directions:
            reason = tier_reason(change, before, tier)
            summary = f"Tier {before.value} -> {tier.value} ({direction}): {reason}"
            details: JsonObject = {
                "tier": tier.value,
                "previous_tier": before.value,
                "direction": direction,
                "reason": reason,
                "value_score": change.value_score,
                "previous_value_score": change.previous_value_score,
            }
            return Finding(True, direction, summary, details, fresh=True)
    if current is not None and change.computed_at >= current.opened_at + rule.expire_after:
        return Finding(False, summary="Tier unchanged since")
    return Finding(None)


def check_silence(rule: AccountSilent, change: ScoreChange) -> Finding:
    facts = change.account
    if facts.paying is not True:
        return Finding(False, summary="Account no longer paying")
    if facts.last_usage_at is None:
        return Finding(None)  # never used: how long is unknown, so nothing to judge
    silent = change.computed_at - facts.last_usage_at
    if silent >= timedelta(days=rule.days):
        last = f"{facts.last_usage_at:%Y-%m-%d}"
        summary = f"Paying account silent for {silent.days} days (last usage {last})"
        details: JsonObject = {
            "silent_days": silent.days,
            "last_usage_at": facts.last_usage_at.isoformat(),
        }
        return Finding(True, "silent", summary, details)
    if silent < timedelta(days=rule.days - rule.hysteresis_days):
        return Finding(False, summary=f"Usage again (last {facts.last_usage_at:%Y-%m-%d})")
    return Finding(None)


def check_renewal(rule: RenewalAtRisk, change: ScoreChange) -> Finding:
    renewal = change.account.renewal_date
    if renewal is None:
        return Finding(False, summary="No renewal date")
    if change.stage is not None and change.stage is not Stage.renewal_window:
        # The scorecard says what a renewal is: a monthly period's end may not be one.
        return Finding(False, summary=f"Not in a renewal window ({change.stage.value})")
    days_left = (renewal - change.computed_at.astimezone(UTC).date()).days
    if not 0 <= days_left <= rule.days:
        return Finding(False, summary=f"Renewal on {renewal} is not within {rule.days} days")
    if change.band in rule.bands:
        summary = (
            f"Renewal in {days_left} days ({renewal}) with health "
            f"{change.health_score} ({change.band.value})"
        )
        details: JsonObject = {"renewal_date": renewal.isoformat(), "days_left": days_left}
        return Finding(True, change.band.value, summary, details)
    if change.health_score >= rule.resolve_at_health:
        return Finding(False, summary=f"Health back at {change.health_score} before renewal")
    return Finding(None)


def top_drivers(change: ScoreChange, count: int) -> list[JsonValue]:
    """The drivers that moved the score most, losses first."""
    ranked = sorted(change.drivers, key=lambda d: (d.points, d.component))[:count]
    return [{"component": d.component, "points": d.points, "text": d.text} for d in ranked]


SPLIT_COMPONENT = "engagement"
"""The component the shipped scorecards tell A from B by (``tiers.a_vs_b``)."""


def tier_reason(change: ScoreChange, before: Tier, tier: Tier) -> str:
    """Why the tier moved, in words, from what the score change carries: A and B differ
    by engagement; S, A/B and C by the account's share of the portfolio's revenue (or,
    on a scorecard that tiers by value score, by that score)."""
    value = _value_change(change)
    if {before, tier} == {Tier.A, Tier.B}:
        engagement = change.components.get(SPLIT_COMPONENT)
        said = f"engagement {engagement}" if engagement is not None else "engagement"
        side = "reached the line for A" if tier is Tier.A else "fell below the line for A"
        return f"{said} {side} (A and B differ by engagement){value}"
    mrr = _money(change.account.mrr_minor, change.account.currency)
    if tier is Tier.S:
        moved = "now among the top accounts that bring S's share of revenue"
    elif before is Tier.S:
        moved = "no longer among the top accounts that bring S's share of revenue"
    elif tier is Tier.C:
        moved = "now in the tail of accounts that bring C's share of revenue"
    else:
        moved = "now above the tail of accounts that bring C's share of revenue"
    if not value and change.value_score is not None:
        value = f", value score {change.value_score}: other accounts' revenue moved the line"
    return f"revenue contribution{mrr} {moved}{value}"


def _value_change(change: ScoreChange) -> str:
    if change.value_score is None or change.previous_value_score is None:
        return ""
    delta = change.value_score - change.previous_value_score
    if delta == 0:
        return ""
    return f"; value score {change.previous_value_score} -> {change.value_score} ({delta:+d})"


def _money(minor: int | None, currency: str | None) -> str:
    if minor is None:
        return ""
    return f" (MRR {minor / 100:,.0f}{f' {currency.upper()}' if currency else ''})"


def _days(span: timedelta) -> str:
    if span < timedelta(days=1):
        return f"{max(1, round(span.total_seconds() / 3600))}h"
    return f"{span.days}d"


# --- silences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """What silences and routes match an alert on."""

    account_id: str
    rule: str
    tier: str | None = None
    risk: str | None = None
    segment: str | None = None
    owner_email: str | None = None
    owner_slack: str | None = None

    @property
    def owners(self) -> tuple[str, ...]:
        """The owner CSM's addresses: a matcher on either of them matches."""
        return tuple(o for o in (self.owner_email, self.owner_slack) if o)


@dataclass(frozen=True)
class Silence:
    """Mutes matching alerts from ``starts_at`` until ``ends_at``; unset matchers match all."""

    id: str
    ends_at: datetime
    starts_at: datetime | None = None
    account_id: str | None = None
    rule: str | None = None
    tier: str | None = None
    owner: str | None = None

    def mutes(self, labels: Labels, now: datetime) -> bool:
        if now >= self.ends_at or (self.starts_at is not None and now < self.starts_at):
            return False
        return (
            _matches(self.account_id, labels.account_id)
            and _matches(self.rule, labels.rule)
            and _matches(self.tier, labels.tier)
            and any(_matches(self.owner, owner) for owner in labels.owners or (None,))
        )


def _matches(wanted: str | None, actual: str | None) -> bool:
    return wanted is None or (actual is not None and wanted.casefold() == actual.casefold())


def silenced(silences: list[Silence], labels: Labels, now: datetime) -> bool:
    return any(silence.mutes(labels, now) for silence in silences)


def labels_of(change: ScoreChange, rule: str) -> Labels:
    facts = change.account
    return Labels(
        account_id=change.account_id,
        rule=rule,
        tier=change.tier.value if change.tier else None,
        risk=change.risk.value if change.risk else None,
        segment=facts.segment,
        owner_email=facts.owner_csm_email,
        owner_slack=facts.owner_csm_slack,
    )


# --- state machine ------------------------------------------------------------------


@dataclass(frozen=True)
class Mute:
    """Why notices are held back: a matching silence (all notices)."""

    silenced: bool = False


UNMUTED = Mute()


def decide(
    rule: Rule,
    finding: Finding,
    current: Alert | None,
    account_id: str,
    now: datetime,
    mute: Mute = UNMUTED,
) -> list[Decision]:
    """The transitions ``finding`` causes for the (account, rule) alert ``current``."""
    is_open = current is not None and current.state is AlertState.open
    if finding.firing is True and is_open and finding.fresh:
        assert current is not None
        closed = _resolve(rule, finding, current, now, mute, notify_resolved=False)
        return [closed, _open(finding, closed.alert, account_id, rule.name, now, mute)]
    if finding.firing is True and not is_open:
        return [_open(finding, current, account_id, rule.name, now, mute)]
    if finding.firing is True:
        assert current is not None
        again = _renotify(rule, finding, current, now, mute)
        return [again] if again else []
    if finding.firing is False and is_open:
        assert current is not None
        notify = rule.notify_resolved and not finding.quiet
        return [_resolve(rule, finding, current, now, mute, notify)]
    return []


def _open(
    finding: Finding, previous: Alert | None, account_id: str, rule: str, now: datetime, mute: Mute
) -> Decision:
    episode = previous.episode + 1 if previous else 1
    alert = Alert(
        id=alert_id(account_id, rule, episode),
        account_id=account_id,
        rule=rule,
        episode=episode,
        state=AlertState.open,
        severity=finding.severity,
        opened_at=now,
    )
    return _notice(Transition.opened, alert, finding, now, not mute.silenced)


def _renotify(
    rule: Rule, finding: Finding, current: Alert, now: datetime, mute: Mute
) -> Decision | None:
    snoozed = current.snoozed_until is not None and now < current.snoozed_until
    if _rank(finding.severity) > _rank(current.severity):
        alert = replace(current, severity=finding.severity)
        return _notice(Transition.escalated, alert, finding, now, not (mute.silenced or snoozed))
    if current.acked_at is not None or snoozed or mute.silenced:
        return None
    # Opened while silenced: the first notice goes out as soon as nothing holds it back.
    never_told = current.notifications == 0
    if not never_told and (rule.cooldown is None or now - _last_notice(current) < rule.cooldown):
        return None
    alert = replace(current, severity=finding.severity)
    return _notice(Transition.reminded, alert, finding, now, True)


def _last_notice(alert: Alert) -> datetime:
    return alert.last_notified_at or alert.opened_at


def _resolve(
    rule: Rule, finding: Finding, current: Alert, now: datetime, mute: Mute, notify_resolved: bool
) -> Decision:
    alert = replace(current, state=AlertState.resolved, resolved_at=now)
    # A resolved notice only makes sense to someone who was told of the alert.
    notify = notify_resolved and current.notifications > 0 and not mute.silenced
    return _notice(Transition.resolved, alert, finding, now, notify)


def _notice(
    transition: Transition, alert: Alert, finding: Finding, now: datetime, notify: bool
) -> Decision:
    if notify:
        alert = replace(alert, last_notified_at=now, notifications=alert.notifications + 1)
    return Decision(transition, alert, notify, finding.summary, dict(finding.details))


SEVERITY_RANK = {Risk.medium.value: 1, Risk.high.value: 2, "yellow": 1, "red": 2}


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


# --- per-account memory ---------------------------------------------------------------


def remember_health(history: HealthHistory, change: ScoreChange, keep: timedelta) -> HealthHistory:
    """``history`` with ``change`` added and points older than ``keep`` dropped."""
    if keep <= timedelta(0):
        return []
    since = change.computed_at - keep
    kept = [(at, score) for at, score in history if at >= since and at != change.computed_at]
    return sorted([*kept, (change.computed_at, change.health_score)])


@dataclass(frozen=True)
class Evaluation:
    decisions: list[Decision]
    history: HealthHistory


def evaluate(
    rules: list[Rule],
    change: ScoreChange,
    history: HealthHistory,
    alerts: dict[str, Alert],
    silences: list[Silence],
    now: datetime,
    risk_absent_high_below: int = 0,
) -> Evaluation:
    """Every enabled rule on one score change; ``alerts``: the newest episode per rule."""
    decisions: list[Decision] = []
    for rule in rules:
        current = alerts.get(rule.name)
        finding = check(rule, change, history, current, risk_absent_high_below)
        # Labels only for silences to match: most changes meet none, and a sweep makes many.
        mute = Mute(silenced(silences, labels_of(change, rule.name), now)) if silences else UNMUTED
        decisions += decide(rule, finding, current, change.account_id, now, mute)
    keep = max((r.health_window() for r in rules), default=timedelta(0))
    return Evaluation(decisions, remember_health(history, change, keep))
