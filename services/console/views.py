"""What the pages show, from what the APIs answer: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TypedDict

from services.scoring.schemas import AccountSummary, HistoryEntry, TierFigures
from shared.scores import Risk, Stage, Tier

TIER_ORDER: dict[str | None, int] = {"S": 0, "A": 1, "B": 2, "C": 3, None: 4}
RANGES = {"30d": 30, "90d": 90, "1y": 365}
DEFAULT_RANGE = "90d"
FILTERS = ("q", "tier", "band", "risk", "stage", "stale", "owner", "segment", "sort", "order")
OVERRIDE_DAYS = (7, 30, 90)
SNOOZES = {"4h": "4 hours", "1d": "a day", "3d": "3 days", "7d": "a week"}
NO_FIGURES = TierFigures(accounts=0, mrr_minor=0, revenue_share=0)
"""A tier's figures on a day it had no accounts."""


SAVABLE = [stage.value for stage in Stage if stage is not Stage.churned]
"""Stages a CSM can still act in: a churned account needs no attention first."""

Reader = Callable[[HistoryEntry], int | None]
"""One value of a material change for a chart (a score, a level's index), or None."""


class HealthSeries(TypedDict):
    t: list[float]  # epoch seconds, oldest first
    health: list[int | None]


class ComponentSeries(TypedDict):
    t: list[float]
    components: dict[str, list[int | None]]


class StandingSeries(TypedDict):
    t: list[float]
    risk: list[int | None]  # indexes of ``risks``
    tier: list[int | None]  # indexes of ``tiers``
    risks: tuple[str, ...]
    tiers: tuple[str, ...]


class BandZones(TypedDict):
    green_at: int
    yellow_at: int


def attention_first(accounts: list[AccountSummary]) -> list[AccountSummary]:
    """Who needs attention first: the most valuable tiers, then the biggest 7-day
    drop, then the lowest score."""
    return sorted(
        accounts,
        key=lambda a: (
            TIER_ORDER.get(a.tier, 4),
            a.score_change or 0,
            a.health_score if a.health_score is not None else 101,
        ),
    )


def money(minor: int | None, currency: str | None = None) -> str:
    """Minor units as an amount: 1234567 -> "12,345.67" (with the currency if known)."""
    if minor is None:
        return "-"
    amount = f"{minor / 100:,.2f}"
    return f"{amount} {currency.upper()}" if currency else amount


def when(value: datetime | None) -> str:
    """A time as the pages show it, in UTC to the minute; "-" for none."""
    if not value:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def chart_series(entries: list[HistoryEntry], now: datetime) -> HealthSeries:
    """Health over time for the chart: epoch seconds and scores, oldest first, the last
    score held until ``now`` (a score stands until its next material change)."""
    t, (health,) = _held(entries, now, [lambda e: e.health_score])
    return {"t": t, "health": health}


def component_series(entries: list[HistoryEntry], now: datetime) -> ComponentSeries:
    """Each component's score at each material change, held until ``now`` likewise; a
    component absent from a change (no data then) is a gap."""
    names = sorted({name for e in entries for name in e.components})
    readers = [partial(_component, name=name) for name in names]
    t, values = _held(entries, now, readers)
    return {"t": t, "components": dict(zip(names, values, strict=True))}


def _component(entry: HistoryEntry, name: str) -> int | None:
    return entry.components.get(name)


def moved(now: int, then: int) -> str:
    """A count's change for the portfolio's movement: "+3", "-2", "0"."""
    return f"{now - then:+,}" if now != then else "0"


def moved_share(now: float, then: float) -> str:
    """A revenue share's change in percentage points."""
    points = round((now - then) * 100)
    return f"{points:+} pts" if points else "0"


def names_of(now: Mapping[str, object], then: Mapping[str, object] | None) -> list[str]:
    """The rows of a movement table: what there is now, and what there was then."""
    return sorted({*now, *(then or {})})


def signed_money(minor: int, currency: str | None = None) -> str:
    return ("+" if minor > 0 else "") + money(minor, currency)


RISK_LEVELS = tuple(risk.value for risk in Risk)  # low to high
TIER_LEVELS = tuple(tier.value for tier in reversed(Tier))  # C to S


def standing_series(entries: list[HistoryEntry], now: datetime) -> StandingSeries:
    """Risk and tier over time, each as its level's index (``RISK_LEVELS``,
    ``TIER_LEVELS``) so that a chart steps between them; None where there was none."""
    readers: list[Reader] = [
        lambda e: _level(e.risk, RISK_LEVELS),
        lambda e: _level(e.tier, TIER_LEVELS),
    ]
    t, (risk, tier) = _held(entries, now, readers)
    return {"t": t, "risk": risk, "tier": tier, "risks": RISK_LEVELS, "tiers": TIER_LEVELS}


def _level(value: str | None, levels: tuple[str, ...]) -> int | None:
    return levels.index(value) if value in levels else None


def _held(
    entries: list[HistoryEntry], now: datetime, readers: Sequence[Reader]
) -> tuple[list[float], list[list[int | None]]]:
    """Times (epoch seconds, oldest first) and each reader's values at them, the last
    values repeated at ``now``."""
    ordered = sorted(entries, key=lambda e: e.computed_at)
    t = [e.computed_at.timestamp() for e in ordered]
    values = [[read(e) for e in ordered] for read in readers]
    if t and t[-1] < now.timestamp():
        t.append(now.timestamp())
        for series in values:
            series.append(series[-1])
    return t, values


def band_zones(definition: Mapping[str, object] | None) -> BandZones:
    """The scorecard's band thresholds (green from, yellow from) for the chart."""
    bands = (definition or {}).get("bands")
    found: Mapping[str, object] = bands if isinstance(bands, Mapping) else {}
    return {
        "green_at": _threshold(found.get("green_at"), 70),
        "yellow_at": _threshold(found.get("yellow_at"), 40),
    }


def _threshold(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) else default


def changes(entries: list[HistoryEntry], limit: int = 20) -> list[HistoryEntry]:
    """The material changes to list under the chart, newest first."""
    return sorted(entries, key=lambda e: e.sequence, reverse=True)[:limit]


def list_query(params: dict[str, str]) -> dict[str, str]:
    """The accounts list's filters that were given, for the API and the next-page link."""
    return {name: params[name] for name in FILTERS if params.get(name)}


SIGN_IN_MESSAGES = {
    "signed_out": "Signed out.",
    "sign_in_first": "Sign in first.",
    "session_ended": "Your session has ended: sign in again.",
    "key_refused": "Your key was refused (revoked, replaced or expired): sign in again.",
}
"""What the sign-in page may say after a redirect, by the code in its ``?message=``:
never words from the URL, which anyone can write into a link and send."""

PROVIDER_REFUSALS = {
    "access_denied": "access was denied",
    "mismatching_state": "the sign-in took too long or began elsewhere; try again",
    "login_required": "you are not signed in there",
    "consent_required": "the console needs your consent there",
    "interaction_required": "it needs you to do something there first",
    "temporarily_unavailable": "it is busy; try again",
    "server_error": "it failed",
}
"""Errors of the OAuth 2.0 and OpenID Connect specifications, in words."""


def provider_refusal(error: object) -> str:
    """Why sign-in through the provider failed, from its error code alone: the code
    and its description come in the URL, which anyone can write."""
    reason = PROVIDER_REFUSALS.get(error) if isinstance(error, str) else None
    return "Sign-in through the identity provider failed" + (f": {reason}." if reason else ".")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this console only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
