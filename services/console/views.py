"""What the pages show, from what the APIs answer: pure functions, no I/O."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TypedDict

from services.scoring.schemas import AccountSummary, HistoryEntry, TierFigures
from shared.scores import Driver, Risk, Tier

RANGES = {"30d": 30, "90d": 90, "1y": 365}
DEFAULT_RANGE = "90d"
FILTERS = (
    "q",
    "tier",
    "band",
    "risk",
    "stage",
    "stale",
    "churned",
    "owner",
    "segment",
    "renews_within",
    "sort",
    "order",
)
RENEWS_WITHIN = {"30": "30 days", "60": "60 days", "90": "90 days", "180": "180 days"}
"""The accounts list's renewal filter: renewing from today to this many days ahead."""
OVERRIDE_DAYS = (7, 30, 90)
SNOOZES = {"4h": "4 hours", "1d": "a day", "3d": "3 days", "7d": "a week"}
NO_FIGURES = TierFigures(accounts=0, mrr_minor=0, revenue_share=0)
"""A tier's figures on a day it had no accounts."""


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


def list_query(params: Mapping[str, str]) -> dict[str, str]:
    """The accounts list's filters that were given, for the page and its links; churned
    accounts are left out unless asked for (``churned=any`` shows them all)."""
    query = {name: params[name] for name in FILTERS if params.get(name)}
    query.setdefault("churned", "false")
    return query


def api_query(query: Mapping[str, str], today: date) -> dict[str, str]:
    """The scoring API's parameters for the list's filters: "renews within N days" as
    dates, and no churned filter for "any"."""
    found = {k: v for k, v in query.items() if k not in ("renews_within", "churned")}
    if query.get("churned") in ("true", "false"):
        found["churned"] = query["churned"]
    days = query.get("renews_within")
    if days is not None:
        if days not in RENEWS_WITHIN:
            raise ValueError(f"renews_within must be one of {', '.join(RENEWS_WITHIN)}")
        found["renews_from"] = today.isoformat()
        found["renews_until"] = (today + timedelta(days=int(days))).isoformat()
    return found


def renews(day: date | None, today: date) -> str:
    """A renewal date with how far it is: "2026-12-22 (in 14 days)"; "-" for none."""
    if day is None:
        return "-"
    days = (day - today).days
    span = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    how_far = "today" if days == 0 else f"in {span}" if days > 0 else f"{span} ago"
    return f"{day} ({how_far})"


CSV_COLUMNS = (
    "account_id",
    "name",
    "health_score",
    "band",
    "change_7d",
    "change_30d",
    "tier",
    "risk",
    "stage",
    "owner",
    "segment",
    "mrr_minor",
    "renewal_date",
    "scored_at",
)


def csv_row(account: AccountSummary) -> list[object]:
    """One account as a row of the accounts list's CSV export (``CSV_COLUMNS``)."""
    return [
        account.account_id,
        account.name or "",
        _blank(account.health_score),
        _blank(account.band),
        _blank(account.score_change),
        _blank(account.change_30d),
        _blank(account.tier),
        _blank(account.risk),
        _blank(account.stage),
        account.owner or "",
        account.segment or "",
        _blank(account.mrr_minor),
        _blank(account.renewal_date),
        account.scored_at.isoformat() if account.scored_at else "",
    ]


def _blank(value: object) -> object:
    return "" if value is None else value


# Drivers in words a CSM reads: "usage last 14 days / own baseline 0.54 -> 0.35, -9
# points" (as scoring writes them) becomes "usage last 14 days: 54% -> 35% of usual,
# -9 points"; a measure that did not move but whose points did (its weight changed as
# another measure gained or lost data) says so.
_DRIVER = re.compile(
    r"^(?P<label>.+) (?P<was>\S+) -> (?P<now>\S+), (?P<points>[-+][\d.e+-]+) points$"
)
_DENOMINATORS = {"own baseline": "usual"}


@dataclass(frozen=True)
class SaidDriver:
    """A driver in words, and its points (signed) for the page to colour."""

    text: str
    points: float


def drivers_in_words(drivers: Sequence[Driver]) -> list[SaidDriver]:
    """Each driver of one change in words (see above)."""
    parsed = [(d, _DRIVER.match(d.text)) for d in drivers]
    arrived = [
        _group_words(d.component)
        for d, m in parsed
        if m and m["was"] == "none" and m["now"] != "none"
    ]
    gone = [
        _group_words(d.component)
        for d, m in parsed
        if m and m["was"] != "none" and m["now"] == "none"
    ]
    cause = "; ".join(
        [f"{g} data arrived" for g in dict.fromkeys(arrived)]
        + [f"{g} data stopped" for g in dict.fromkeys(gone)]
    )
    return [SaidDriver(_said(d, m, cause), d.points) for d, m in parsed]


def _said(driver: Driver, found: re.Match[str] | None, cause: str) -> str:
    points = f"{driver.points:+g} points"
    if found is None:
        return driver.text
    label, was, now = found["label"], found["was"], found["now"]
    if was == now:
        because = f"{cause}; " if cause else ""
        return f"{_measure(label, now)}, unchanged: {because}weights rebalanced, {points}"
    if was == "none":
        return f"{_measure(label, now)} (new data), {points}"
    if now == "none":
        return f"{label}: no data now (was {_value(label, was)}), {points}"
    return f"{_measure(label, was, now)}, {points}"


def _measure(label: str, value: str, then: str | None = None) -> str:
    """``label`` at ``value`` (or moving from ``value`` to ``then``), ratios as percents."""
    numerator, slash, denominator = label.partition(" / ")
    values = [value] if then is None else [value, then]
    if slash and all(_number(v) is not None for v in values):
        shown = " -> ".join(f"{_number(v) * 100:.0f}%" for v in values)  # type: ignore[operator]
        return f"{numerator}: {shown} of {_DENOMINATORS.get(denominator, denominator)}"
    return f"{label} {' -> '.join(values)}"


def _value(label: str, value: str) -> str:
    return _measure(label, value).removeprefix(label).strip()


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _group_words(component: str) -> str:
    return component.replace("_", " ")


@dataclass(frozen=True)
class Story:
    """How an account's health moved over a span: from, to, and the components behind
    it (label, points), biggest first."""

    days: int
    health_then: int
    health_now: int
    moved_by: list[tuple[str, float]]

    @property
    def change(self) -> int:
        return self.health_now - self.health_then


def story(
    entries: Sequence[HistoryEntry],
    now: datetime,
    labels: Mapping[str, str],
    days: int = 30,
) -> Story | None:
    """The last ``days`` of health: the score before the span (the last change before
    it, else the first one in it less its own drivers), the score now, and each
    component's points summed over the span's changes (drivers add up to each
    change); None without changes in it."""
    since = now - timedelta(days=days)
    ordered = sorted(entries, key=lambda e: e.sequence)
    inside = [e for e in ordered if e.computed_at >= since]
    if not inside:
        return None
    before = [e for e in ordered if e.computed_at < since]
    first = inside[0]
    then = (
        before[-1].health_score
        if before
        else first.health_score - round(sum(d.points for d in first.drivers))
    )
    per_component: dict[str, float] = defaultdict(float)
    for entry in inside:
        for d in entry.drivers:
            per_component[d.component] += d.points
    moved_by = sorted(
        (
            (labels.get(c, _group_words(c)), round(p, 1))
            for c, p in per_component.items()
            if round(p, 1)
        ),
        key=lambda item: -abs(item[1]),
    )
    return Story(days, then, inside[-1].health_score, moved_by)


def group_labels(definition: Mapping[str, object] | None) -> dict[str, str]:
    """The scorecard's component (group) labels: "activity_trend" -> "usage vs baseline"."""
    groups = (definition or {}).get("groups")
    if not isinstance(groups, Mapping):
        return {}
    found = {}
    for name, group in groups.items():
        label = group.get("label") if isinstance(group, Mapping) else None
        if isinstance(label, str):
            found[str(name)] = label
    return found


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
