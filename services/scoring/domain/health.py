"""The health score: measures -> groups (components) -> overall, and its drivers.

Every measure contributes ``group weight x measure weight x measure score`` points
(weights renormalised over what has data), a cap adds a non-positive correction, and
the score is their sum, rounded. Drivers are the differences of those contributions
between two assessments, so they always add up to the change of the score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.scoring.domain.assessment import Assessment, MeasureValue
from services.scoring.domain.signals import Signals
from services.scoring.scorecard import CategoriesThreshold, Measure, Scorecard
from shared.scores import Driver

CAP = "cap"


@dataclass(frozen=True)
class Health:
    score: int
    components: dict[str, int]
    contributions: dict[str, float]
    measures: dict[str, MeasureValue]


def measure_score(measure: Measure, value: MeasureValue, judged: bool = True) -> float | None:
    """0-100, or None when the measure has no data and its weight is redistributed."""
    threshold = measure.threshold
    if value is None:
        score = None
    elif isinstance(threshold, CategoriesThreshold):
        score = threshold.category_score(str(value))
    else:
        score = threshold.score(float(value))
    if score is None and (
        measure.missing == "zero" or (measure.missing == "zero_once_judged" and judged)
    ):
        return 0.0
    return score


def compute_health(signals: Signals, card: Scorecard) -> Health | None:
    """The health score, or None while no group has data."""
    judged = signals.judged()
    values: dict[str, MeasureValue] = {}
    scores: dict[str, float | None] = {}
    for name, defined in card.measures.items():
        value = values[name] = signals.value(defined)
        scores[name] = measure_score(defined, value, judged)
    group_parts: dict[str, dict[str, float]] = {}
    for group in card.groups:
        present = {m: w for m, w in card.measure_weights(group).items() if scores[m] is not None}
        if present:
            total = sum(present.values())
            group_parts[group] = {m: w / total * _known(scores[m]) for m, w in present.items()}
    if not group_parts:
        return None
    weights = {g: w for g, w in card.group_weights().items() if g in group_parts}
    total_weight = sum(weights.values())
    contributions: dict[str, float] = {}
    for group, parts in group_parts.items():
        for measure, points in parts.items():
            contributions[measure] = weights[group] / total_weight * points
    raw = sum(contributions.values())
    limit = _cap(card, signals)
    if limit is not None and raw > limit:
        contributions[CAP] = limit - raw
    components = {g: _round(sum(parts.values())) for g, parts in group_parts.items()}
    score = min(100, max(0, _round(sum(contributions.values()))))
    return Health(score, components, contributions, values)


def _known(score: float | None) -> float:
    assert score is not None
    return score


def _cap(card: Scorecard, signals: Signals) -> float | None:
    status = signals.state.status
    limits = [c.max_score for c in card.overall.caps if str(status) in c.subscription_status]
    return min(limits) if limits else None


def _round(value: float) -> int:
    """Half up, so scores never depend on banker's rounding."""
    return math.floor(value + 0.5)


def drivers(previous: Assessment | None, current: Health, card: Scorecard) -> list[Driver]:
    """What moved since ``previous``, in points that add up to the score's change."""
    before = previous.contributions if previous else {}
    change = current.score - (previous.health_score if previous else 0)
    names = sorted(set(before) | set(current.contributions))
    moved = {n: current.contributions.get(n, 0.0) - before.get(n, 0.0) for n in names}
    tenths = {n: round(delta * 10) for n, delta in moved.items()}
    residual = change * 10 - sum(tenths.values())
    if residual:
        largest = max(moved, key=lambda n: (abs(moved[n]), n)) if moved else CAP
        tenths[largest] = tenths.get(largest, 0) + residual
    found = []
    for name, points in tenths.items():
        if points:
            found.append(_driver(name, points / 10, previous, current, card))
    return sorted(found, key=lambda d: (-abs(d.points), d.component, d.text))


def _driver(
    name: str, points: float, previous: Assessment | None, current: Health, card: Scorecard
) -> Driver:
    if name == CAP:
        return Driver(component=CAP, points=points, text=f"score cap, {_points(points)}")
    measure = card.measures.get(name)
    group = next((g for g, grp in card.groups.items() if name in grp.measures), name)
    label = measure.label if measure else name
    was = previous.measures.get(name) if previous else None
    now = current.measures.get(name)
    return Driver(
        component=group,
        measure_before=was if isinstance(was, float | int) else None,
        measure_after=now if isinstance(now, float | int) else None,
        points=points,
        text=f"{label} {_show(was)} -> {_show(now)}, {_points(points)}",
    )


def _show(value: MeasureValue) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def _points(points: float) -> str:
    return f"{points:+g} points"
