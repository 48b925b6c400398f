"""Rule sets as data: the YAML rules file and the model that validates it.

Errors name the rule and the field, e.g.
``rules[1] (sharp_health_drop).points: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.alerts.documents import ConfigError, describe_errors, load_yaml
from services.alerts.rules.kinds import Rule

DEFAULT_RULES_FILE = Path(__file__).parent / "default.yaml"


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


def parse_rules(document: object, source: str = "rules") -> RuleSet:
    try:
        return RuleSet.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, document, source)) from None


def load_rules(path: Path = DEFAULT_RULES_FILE) -> RuleSet:
    return parse_rules(load_yaml(path), str(path))
