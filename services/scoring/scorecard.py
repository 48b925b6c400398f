"""The scorecard: what the health score, churn risk, value tier and stage are made of.

A scorecard is data (YAML), versioned by ``id`` and ``version``, validated once at
start. Several scorecards may be loaded; each account is scored by the one its
segment rules pick (see :class:`ScorecardSet`). No I/O here except reading files in
:func:`load_scorecards`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events import Text200
from shared.scores import MAX_LIST_ITEMS, Band, Risk

Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Points = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
Days = Annotated[int, Field(ge=1, le=400)]
USAGE_KEPT_DAYS = 120  # days of usage and users an account keeps (Limits.retention_days)
USERS_RECENT_DAYS, USERS_REFERENCE_DAYS, USERS_MIN = 21, 70, 3
NOT_ALPHANUMERIC = re.compile(r"[\W_]+")

Signal = Literal[
    "active_users_per_seat",
    "usage_trend",
    "usage_vs_baseline",
    "days_since_last_usage",
    "key_feature_breadth",
    "subscription_status",
    "days_past_due",
    "failed_payments",
    "mrr_change",
]
WINDOWED: dict[str, int] = {
    "active_users_per_seat": 30,
    "usage_trend": 14,
    "usage_vs_baseline": 14,
    "key_feature_breadth": 30,
    "failed_payments": 90,
    "mrr_change": 90,
}


@functools.lru_cache(maxsize=4096)
def feature_key(name: str) -> str:
    """A feature name as matched: "Report Exported", "report_exported" and
    "report.exported" are one feature, however the product's tracking spells it."""
    return ".".join(NOT_ALPHANUMERIC.split(name.casefold())).strip(".")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Strict):
    """One step of a "bands" threshold."""

    at_least: float = Field(allow_inf_nan=False)
    score: Points


class BandsThreshold(Strict):
    """Steps: the score of the first band whose ``at_least`` the value reaches."""

    style: Literal["bands"]
    bands: list[Step] = Field(min_length=1)
    otherwise: Points = 0

    @model_validator(mode="after")
    def _descending(self) -> BandsThreshold:
        steps = [band.at_least for band in self.bands]
        if steps != sorted(steps, reverse=True) or len(set(steps)) != len(steps):
            raise ValueError("bands must be listed with strictly decreasing at_least")
        return self

    def score(self, value: float) -> float:
        return next((b.score for b in self.bands if value >= b.at_least), self.otherwise)


class LinearThreshold(Strict):
    """A straight line through (``zero_at``, 0) and (``full_at``, 100), clamped to 0-100."""

    style: Literal["linear"]
    zero_at: float = Field(allow_inf_nan=False)
    full_at: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _distinct_ends(self) -> LinearThreshold:
        if self.zero_at == self.full_at:
            raise ValueError("zero_at and full_at must differ")
        return self

    def score(self, value: float) -> float:
        return 100 * _fraction(value, self.zero_at, self.full_at)


class LinearBoundedThreshold(Strict):
    """Linear between ``zero_at`` and ``full_at``, mapped onto ``floor``..``ceiling``."""

    style: Literal["linear-bounded"]
    zero_at: float = Field(allow_inf_nan=False)
    full_at: float = Field(allow_inf_nan=False)
    floor: Points = 0
    ceiling: Points = 100

    @model_validator(mode="after")
    def _ordered(self) -> LinearBoundedThreshold:
        if self.zero_at == self.full_at:
            raise ValueError("zero_at and full_at must differ")
        if self.floor >= self.ceiling:
            raise ValueError("floor must be below ceiling")
        return self

    def score(self, value: float) -> float:
        return self.floor + (self.ceiling - self.floor) * _fraction(
            value, self.zero_at, self.full_at
        )


class CategoriesThreshold(Strict):
    """For categorical signals (subscription status): a score per category."""

    style: Literal["categories"]
    scores: dict[str, Points] = Field(min_length=1)
    otherwise: Points | None = Field(None, description="Unlisted category; null = missing.")

    def category_score(self, category: str) -> float | None:
        return self.scores.get(category, self.otherwise)

    def score(self, value: float) -> float:  # categorical signals never give numbers
        raise TypeError("a categories threshold scores categories, not numbers")


def _fraction(value: float, zero_at: float, full_at: float) -> float:
    return min(1.0, max(0.0, (value - zero_at) / (full_at - zero_at)))


Threshold = Annotated[
    BandsThreshold | LinearThreshold | LinearBoundedThreshold | CategoriesThreshold,
    Field(discriminator="style"),
]


class Measure(Strict):
    signal: Signal
    label: Text200 = Field(
        min_length=1, max_length=100, description="For drivers, e.g. 'active users / seats'."
    )
    window_days: Days | None = Field(None, description="Window of windowed signals.")
    threshold: Threshold
    missing: Literal["redistribute", "zero", "zero_once_judged"] = Field(
        "redistribute",
        description="Without data: share its weight, count it as 0, or count it as 0 only "
        "once the account is past onboarding (too new to judge before).",
    )
    seats_settle_days: Days | None = Field(
        None,
        description="active_users_per_seat: seats bought in the last N days count only "
        "from then on, so an expansion is not read as falling engagement.",
    )

    @model_validator(mode="after")
    def _fits_signal(self) -> Measure:
        categorical = self.signal == "subscription_status"
        if categorical != isinstance(self.threshold, CategoriesThreshold):
            raise ValueError("subscription_status takes, and only it takes, a categories threshold")
        if self.window_days is not None and self.signal not in WINDOWED:
            raise ValueError(f"signal {self.signal} has no window")
        if self.seats_settle_days is not None and self.signal != "active_users_per_seat":
            raise ValueError("seats_settle_days goes with active_users_per_seat only")
        return self

    @functools.cached_property
    def window(self) -> int:  # read at every re-score
        return self.window_days or WINDOWED.get(self.signal, 0)


class Group(Strict):
    label: Text200 = Field(min_length=1, max_length=100)
    measures: dict[Name, Weight] = Field(min_length=1, description="Measure name -> weight.")


class Cap(Strict):
    """An upper bound on the health score while a hard fact holds."""

    reason: Text200 = Field(min_length=1)
    max_score: Points
    subscription_status: list[str] = Field(min_length=1)


class Overall(Strict):
    weights: dict[Name, Weight] = Field(min_length=1, description="Group name -> weight.")
    caps: list[Cap] = Field(default_factory=list)


class Bands(Strict):
    green_at: Points = 70
    yellow_at: Points = 40

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.yellow_at >= self.green_at:
            raise ValueError("yellow_at must be below green_at")
        return self

    def of(self, score: float) -> Band:
        if score >= self.green_at:
            return Band.green
        return Band.yellow if score >= self.yellow_at else Band.red


class RiskCondition(Strict):
    """Every field given must hold; at least one must be given."""

    band: list[Band] | None = None
    dropped_points: float | None = Field(None, gt=0, description="With within_days.")
    within_days: Days | None = None
    payment_failed_unresolved: bool | None = None
    cancellation_scheduled: bool | None = None
    silent_days: Days | None = None
    days_past_due: Days | None = None
    stale: bool | None = None
    payment_unresolved_days: Days | None = Field(
        None, description="A failed payment still unpaid N days after it first failed."
    )
    usage_below_baseline: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Usage over the last usage_window_days vs the account's baseline below "
        "this ratio, by more than the baseline's significance.",
    )
    usage_window_days: Days | None = Field(
        None, description="Window of usage_below_baseline; the baseline measure's by default."
    )
    active_users_share_below: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Users active in the last active_users_recent_days, as a share of those "
        "active in the last active_users_reference_days, below this: users are lapsing.",
    )
    active_users_recent_days: Days | None = Field(
        None, description=f"Recent window of active_users_share_below ({USERS_RECENT_DAYS})."
    )
    active_users_reference_days: Days | None = Field(
        None,
        le=USAGE_KEPT_DAYS,
        description=f"Reference window of active_users_share_below ({USERS_REFERENCE_DAYS}).",
    )
    active_users_min: int | None = Field(
        None,
        ge=1,
        description=f"Fewer users than this in the reference window: not judged ({USERS_MIN}).",
    )
    for_days: Days | None = Field(
        None, description="band / usage_below_baseline held at each of the last N day closes."
    )
    min_age_days: Days | None = Field(
        None, description="Only for accounts at least N days old: newer ones are not judged."
    )

    @model_validator(mode="after")
    def _complete(self) -> RiskCondition:
        if not self.model_fields_set - {"for_days", "min_age_days"}:
            raise ValueError("a condition needs at least one field besides for_days, min_age_days")
        if (self.dropped_points is None) != (self.within_days is None):
            raise ValueError("dropped_points and within_days go together")
        if self.for_days is not None and self.band is None and self.usage_below_baseline is None:
            raise ValueError("for_days goes with band or usage_below_baseline")
        if self.usage_window_days is not None and self.usage_below_baseline is None:
            raise ValueError("usage_window_days goes with usage_below_baseline")
        return self._active_users_complete()

    def _active_users_complete(self) -> RiskCondition:
        given = {"active_users_recent_days", "active_users_reference_days", "active_users_min"}
        if self.active_users_share_below is None and given & self.model_fields_set:
            raise ValueError(", ".join(sorted(given)) + " go with active_users_share_below")
        if self.users_recent_days >= self.users_reference_days:
            raise ValueError("active_users_recent_days must be below active_users_reference_days")
        return self

    @property
    def users_recent_days(self) -> int:
        return self.active_users_recent_days or USERS_RECENT_DAYS

    @property
    def users_reference_days(self) -> int:
        return self.active_users_reference_days or USERS_REFERENCE_DAYS

    @property
    def users_min(self) -> int:
        return self.active_users_min or USERS_MIN


class RiskRule(Strict):
    risk: Literal[Risk.medium, Risk.high]
    # Printable, as the score changes that quote it must be (shared/scores.py).
    reason: Text200 = Field(min_length=1)
    when: RiskCondition


class ChurnRisk(Strict):
    rules: list[RiskRule] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


class ValueWeights(Strict):
    revenue_rank: float = Field(50, ge=0)
    growth: float = Field(20, ge=0)
    potential: float = Field(15, ge=0)
    credit: float = Field(15, ge=0)

    @functools.cached_property
    def positive(self) -> dict[str, float]:
        """The parts that count, by name: read at every re-score, worked out once."""
        return {name: weight for name, weight in self.model_dump().items() if weight > 0}

    @model_validator(mode="after")
    def _some(self) -> ValueWeights:
        if not any(self.model_dump().values()):
            raise ValueError("at least one value weight must be above 0")
        return self


class Growth(Strict):
    window_days: Days = 90
    zero_at: float = Field(-0.25, description="MRR change (fraction) scoring 0.")
    full_at: float = Field(0.25, description="MRR change (fraction) scoring 100.")

    @model_validator(mode="after")
    def _ordered(self) -> Growth:
        if self.zero_at >= self.full_at:
            raise ValueError("zero_at must be below full_at")
        return self


class Potential(Strict):
    utilisation_full_at: float = Field(
        0.9, gt=0, le=1, description="Seat utilisation at which expansion potential is 100."
    )


class Credit(Strict):
    window_days: Days = 365
    points_per_failed_payment: Points = 25


class Penalties(Strict):
    payment_failed_unresolved: Points = 15
    cancellation_scheduled: Points = 25
    per_30_days_past_due: Points = 10


class TierSplit(Strict):
    component: Name = Field("engagement", description="Component that tells A from B.")
    at_least: Points = 60
    min_history_days: Days | None = Field(
        None,
        description="No A or B until the account has been seen for this many days "
        "(the component's window): from a window that history only part-covers, "
        "engagement reads low, and the tier would move once it filled.",
    )


class RevenueShare(Strict):
    """Tiers by revenue contribution, as cumulative shares of the portfolio's revenue."""

    s_until: float = Field(
        0.7, gt=0, lt=1, description="S: the top accounts that together bring this share."
    )
    c_from: float = Field(
        0.95, gt=0, lt=1, description="C: the accounts after this share, the long tail."
    )
    hysteresis: float = Field(0.02, ge=0, le=0.2, description="Share past a cut-off to move.")

    @model_validator(mode="after")
    def _ordered(self) -> RevenueShare:
        if self.c_from <= self.s_until:
            raise ValueError("c_from must be above s_until")
        return self


class Tiers(Strict):
    by: Literal["value_score", "revenue_share"] = Field(
        "value_score",
        description="value_score: S/AB/C by the value score's s_at and ab_at; "
        "revenue_share: by revenue contribution (no tier without revenue data).",
    )
    revenue_share: RevenueShare = Field(default_factory=RevenueShare)
    s_at: Points = 80
    ab_at: Points = 45
    a_vs_b: TierSplit = Field(default_factory=TierSplit)
    hysteresis: float = Field(5, ge=0, le=50, description="Points past a boundary to move.")

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        if self.ab_at >= self.s_at:
            raise ValueError("ab_at must be below s_at")
        return self


class ValueModel(Strict):
    weights: ValueWeights = Field(default_factory=ValueWeights)
    growth: Growth = Field(default_factory=Growth)
    potential: Potential = Field(default_factory=Potential)
    credit: Credit = Field(default_factory=Credit)
    penalties: Penalties = Field(default_factory=Penalties)
    tiers: Tiers = Field(default_factory=Tiers)


class Lifecycle(Strict):
    onboarding_days: Days = 30
    adoption_days: Days = 90
    renewal_window_days: Days = 60
    usage_unknown_while_onboarding: bool = Field(
        False,
        description="Before its first usage, an onboarding account has no usage data (not "
        "zero usage): no usage yet is not churn. Past onboarding, its days since last "
        "usage count from when it was first seen: the silence Vitals has seen.",
    )
    renewal_min_term_months: int = Field(
        0,
        ge=0,
        le=120,
        description="Renewal windows only for terms this long (12: annual contracts, not "
        "each monthly period); an account whose term is unknown always has them.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if self.adoption_days <= self.onboarding_days:
            raise ValueError("adoption_days must be above onboarding_days")
        return self


class Freshness(Strict):
    stale_after_days: Days = 7


class Baseline(Strict):
    """An account's own usage baseline: the days before its recent window."""

    days: Days = Field(56, description="Days before the recent window that make the baseline.")
    min_history_days: Days = Field(
        28, description="Fewer days of history than this: no baseline yet (no judgement)."
    )
    significance: float = Field(
        3.0,
        ge=0,
        le=20,
        allow_inf_nan=False,
        description="A shortfall counts for risk only when it is this many standard "
        "deviations of the expected count (Poisson): small accounts need a clearer drop.",
    )


class Match(Strict):
    """Every key given must match; a key matches when the trait is one of its values."""

    segment: list[str] | None = None
    plan: list[str] | None = None


class Assignment(Strict):
    default: bool = False
    priority: int = 0
    match: Match = Field(default_factory=Match)

    @property
    def specificity(self) -> int:
        return sum(1 for values in self.match.model_dump().values() if values is not None)

    def matches(self, segment: str | None, plan: str | None) -> bool:
        rules = self.match
        if rules.segment is None and rules.plan is None:
            return False
        if rules.segment is not None and segment not in rules.segment:
            return False
        return rules.plan is None or plan in rules.plan


class Scorecard(Strict):
    id: Name
    version: int = Field(ge=1)
    description: str = ""
    assignment: Assignment = Field(default_factory=Assignment)
    key_features: list[str] = Field(default_factory=list)
    # Bounded so that every score change fits its contract (shared.scores).
    measures: dict[Name, Measure] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    groups: dict[Name, Group] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    overall: Overall
    bands: Bands = Field(default_factory=Bands)
    churn_risk: ChurnRisk = Field(default_factory=ChurnRisk)
    value: ValueModel = Field(default_factory=ValueModel)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    freshness: Freshness = Field(default_factory=Freshness)
    baseline: Baseline = Field(default_factory=Baseline)

    @model_validator(mode="after")
    def _references_exist(self) -> Scorecard:
        for group_name, group in self.groups.items():
            for measure in group.measures:
                if measure not in self.measures:
                    raise ValueError(f"groups.{group_name} uses unknown measure {measure!r}")
        unused = set(self.measures) - {m for g in self.groups.values() for m in g.measures}
        if unused:
            raise ValueError(f"measures not in any group: {sorted(unused)}")
        if set(self.overall.weights) != set(self.groups):
            raise ValueError("overall.weights must name every group, and only groups")
        if self.value.tiers.a_vs_b.component not in self.groups:
            raise ValueError("value.tiers.a_vs_b.component must be a group")
        return self

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    # Read at every re-score: worked out once per (frozen) scorecard.
    def group_weights(self) -> dict[str, float]:
        """Weights of the groups, summing to 1."""
        return self._group_weights

    def measure_weights(self, group: str) -> dict[str, float]:
        return self._measure_weights[group]

    @functools.cached_property
    def _group_weights(self) -> dict[str, float]:
        return normalised(self.overall.weights)

    @functools.cached_property
    def _measure_weights(self) -> dict[str, dict[str, float]]:
        return {name: normalised(group.measures) for name, group in self.groups.items()}

    @functools.cached_property
    def key_feature_keys(self) -> frozenset[str]:
        """The key features as matched (:func:`feature_key`)."""
        return frozenset(feature_key(name) for name in self.key_features)

    @functools.cached_property
    def baseline_window_days(self) -> int:
        """The recent window usage is set against its baseline in: the measure's, or 14."""
        return next(
            (m.window for m in self.measures.values() if m.signal == "usage_vs_baseline"),
            WINDOWED["usage_vs_baseline"],
        )

    @property
    def user_window_days(self) -> int:
        return max(
            [m.window for m in self.measures.values() if m.signal == "active_users_per_seat"],
            default=0,
        )


def normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


class ScorecardError(ValueError):
    """A scorecard file that cannot be used; the message names the file and field."""


class ScorecardSet:
    """The loaded scorecards and the rule that picks one per account.

    Tie-break: among matching scorecards, the highest ``priority`` wins, then the
    one matching more traits, then the smallest id. No match: the default.
    """

    def __init__(self, scorecards: list[Scorecard]) -> None:
        ids = [card.id for card in scorecards]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ScorecardError(f"scorecard id used more than once: {duplicated}")
        defaults = [card for card in scorecards if card.assignment.default]
        if len(defaults) != 1:
            found = [card.id for card in defaults]
            raise ScorecardError(f"exactly one scorecard must be the default, found {found}")
        self.default = defaults[0]
        self.all = sorted(scorecards, key=lambda card: card.id)
        # Asked for every account at every re-score: only cards with match rules can match.
        self._matchable = [c for c in self.all if c.assignment.specificity]

    def for_account(self, segment: str | None, plan: str | None) -> Scorecard:
        matching = [c for c in self._matchable if c.assignment.matches(segment, plan)]
        if not matching:
            return self.default
        return min(matching, key=_precedence)


def _precedence(card: Scorecard) -> tuple[int, int, str]:
    return (-card.assignment.priority, -card.assignment.specificity, card.id)


def parse_scorecard(data: object, source: str) -> Scorecard:
    try:
        return Scorecard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ScorecardError(f"{source}: {problems}") from None


def load_scorecards(path: Path) -> ScorecardSet:
    """Every ``*.yaml``/``*.yml`` in a folder, or one file; validated, or ScorecardError."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    elif path.is_file():
        files = [path]
    else:
        raise ScorecardError(f"{path}: no such scorecard file or folder")
    if not files:
        raise ScorecardError(f"{path}: no *.yaml scorecards in this folder")
    cards = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ScorecardError(f"{file}: not valid YAML: {exc}") from None
        cards.append(parse_scorecard(data, str(file)))
    return ScorecardSet(cards)
