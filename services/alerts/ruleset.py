"""Alert rules as data: the YAML rules file and the pydantic models that validate it.

Each rule has a unique ``name`` (the alert key together with the account) and a
``kind`` saying which condition it checks; several rules may share a kind with
different thresholds. Errors name the rule and the field, e.g.
``rules[1] (sharp_health_drop).points: Input should be greater than 0``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.alerts.durations import Duration
from shared.scores import Band, Risk

DEFAULT_RULES_FILE = Path(__file__).parent / "rules" / "default.yaml"
RISK_ORDER = (Risk.low, Risk.medium, Risk.high)
Direction = Literal["up", "down"]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")]


class ConfigError(ValueError):
    """A configuration document is invalid; the message names every bad field."""


class RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    enabled: bool = True
    cooldown: Duration | None = Field(
        timedelta(hours=24),
        description="Least time between two notices of one open alert; null: never remind.",
    )
    notify_resolved: bool = Field(True, description="Send a notice when the condition clears.")

    judged_in_onboarding: ClassVar[bool] = True
    """False for rules that read how usage moves: it only starts moving then."""

    def health_window(self) -> timedelta:
        """How far back the engine must remember an account's health for this rule."""
        return timedelta(0)


class ChurnRiskRaised(RuleBase):
    kind: Literal["churn_risk_raised"]
    min_risk: Literal[Risk.medium, Risk.high] = Risk.medium
    resolve_at: Risk = Field(
        Risk.low, description="Resolved once the risk is at or below this (hysteresis)."
    )
    top_drivers: int = Field(3, ge=0, le=20)

    @model_validator(mode="after")
    def _resolve_below_open(self) -> ChurnRiskRaised:
        if RISK_ORDER.index(self.resolve_at) >= RISK_ORDER.index(self.min_risk):
            raise ValueError("resolve_at must be a lower risk than min_risk")
        return self


class SharpHealthDrop(RuleBase):
    kind: Literal["sharp_health_drop"]
    judged_in_onboarding: ClassVar[bool] = False
    points: int = Field(15, gt=0, le=100, description="Drop that opens the alert.")
    within: Duration = Field(timedelta(days=7), description="Window the drop is measured over.")
    hysteresis_points: int = Field(
        5, ge=0, description="Resolved once the drop is below points - hysteresis_points."
    )
    top_drivers: int = Field(3, ge=0, le=20)
    bands: list[Band] = Field(
        default_factory=lambda: list(Band),
        min_length=1,
        description="Opens only when the drop ends in one of these bands: a score that "
        "fell but is still green needs no one's attention.",
    )

    def health_window(self) -> timedelta:
        return self.within

    @model_validator(mode="after")
    def _window_and_margin(self) -> SharpHealthDrop:
        if self.within <= timedelta(0) or self.within > timedelta(days=90):
            raise ValueError("within must be between 1s and 90d")
        if self.hysteresis_points >= self.points:
            raise ValueError("hysteresis_points must be smaller than points")
        return self


class TierChanged(RuleBase):
    kind: Literal["tier_changed"]
    directions: list[Direction] = Field(default_factory=lambda: list[Direction](["up", "down"]))
    expire_after: Duration = Field(
        timedelta(days=7), description="An unchanged tier closes the alert after this."
    )
    cooldown: Duration | None = None
    notify_resolved: bool = False


class AccountSilent(RuleBase):
    kind: Literal["account_silent"]
    judged_in_onboarding: ClassVar[bool] = False
    days: int = Field(14, ge=1, le=365, description="Days without usage of a paying account.")
    hysteresis_days: int = Field(
        0, ge=0, description="Resolved once silent for fewer than days - hysteresis_days."
    )

    @model_validator(mode="after")
    def _margin(self) -> AccountSilent:
        if self.hysteresis_days >= self.days:
            raise ValueError("hysteresis_days must be smaller than days")
        return self


class RenewalAtRisk(RuleBase):
    kind: Literal["renewal_at_risk"]
    days: int = Field(60, ge=1, le=730, description="Renewal within this many days.")
    bands: list[Band] = Field(default_factory=lambda: [Band.red, Band.yellow], min_length=1)
    resolve_at_health: int = Field(
        75, ge=0, le=100, description="Resolved once health reaches this (hysteresis)."
    )
    cooldown: Duration | None = timedelta(days=7)


Rule = Annotated[
    ChurnRiskRaised | SharpHealthDrop | TierChanged | AccountSilent | RenewalAtRisk,
    Field(discriminator="kind"),
]


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        names = [rule.name for rule in self.rules]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(doubled)}")
        return self

    @property
    def enabled(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]


def parse_rules(document: Any, source: str = "rules") -> RuleSet:
    try:
        return RuleSet.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, document, source)) from None


def load_rules(path: Path = DEFAULT_RULES_FILE) -> RuleSet:
    return parse_rules(load_yaml(path), str(path))


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def describe_errors(exc: ValidationError, document: Any, source: str) -> str:
    """One line per error, naming the field the way it is written in the file."""
    lines = [f"{source} is invalid:"]
    for error in exc.errors(include_url=False):
        lines.append(f"  {field_path(error['loc'], document)}: {error['msg']}")
    return "\n".join(lines)


def field_path(loc: tuple[int | str, ...], document: Any) -> str:
    """``("rules", 1, "sharp_health_drop", "points")`` -> ``rules[1] (name).points``."""
    text, node = "", document
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = (node.get("name") or node.get("id")) if isinstance(node, dict) else None
            text += f"[{part}]" + (f" ({name})" if isinstance(name, str) else "")
        elif isinstance(node, dict) and "kind" in node and part == node.get("kind"):
            continue  # the union tag pydantic adds is not a field of the file
        else:
            node = node.get(part) if isinstance(node, dict) else None
            text += f".{part}" if text else str(part)
    return text or "(document)"
