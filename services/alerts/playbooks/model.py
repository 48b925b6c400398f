"""The playbooks file and the model that validates it.

A file holds a set of playbooks under one ``id`` and ``version``; each playbook has
its own ``version`` too, and every task records both as ``id@version``. Errors name
the playbook and the field, e.g. ``playbooks[2] (silent_paying).steps[0].owner:
...``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.alerts.documents import ConfigError, describe_errors, load_yaml
from shared.scores import Risk, Stage, Tier

DEFAULT_PLAYBOOKS_FILE = Path(__file__).parent / "default.yaml"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
QUEUE_PREFIX = "queue:"


class OwnerRole(StrEnum):
    """Who a step's task goes to."""

    account_owner = "account_owner"
    owner_manager = "owner_manager"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertOpened(Frozen):
    """An alert of ``rule`` opened (a new episode)."""

    kind: Literal["alert_opened"]
    rule: Name
    reason_contains: str | None = Field(
        None, min_length=1, description="Only when a churn-risk reason contains this text."
    )


class StageEntered(Frozen):
    """The account's lifecycle stage became ``stage``."""

    kind: Literal["stage_entered"]
    stage: Stage


class TierChanged(Frozen):
    """The account's value tier moved up or down (CSM overrides included)."""

    kind: Literal["tier_changed"]
    directions: list[Literal["up", "down"]] = Field(default=["up", "down"], min_length=1)


class Manual(Frozen):
    """Started by hand: ``POST /v1/playbooks/{id}/runs``."""

    kind: Literal["manual"]


Trigger = Annotated[AlertOpened | StageEntered | TierChanged | Manual, Field(discriminator="kind")]


class Match(Frozen):
    """Which accounts a playbook is for: every given list must hold (case-insensitive)."""

    tier: list[Tier] | None = None
    stage: list[Stage] | None = None
    segment: list[str] | None = None
    risk: list[Risk] | None = None


class Step(Frozen):
    id: Name
    title: str = Field(min_length=1, max_length=300)
    checklist: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=50
    )
    owner: str = Field(
        "account_owner",
        description="account_owner, owner_manager, or queue:<name> (a named team queue).",
    )
    due_in_business_days: int | None = Field(
        None,
        ge=0,
        le=260,
        description="Overrides the tier's service level for this step (e.g. a week-2 check).",
    )

    @field_validator("owner")
    @classmethod
    def _owner_known(cls, owner: str) -> str:
        if owner in OwnerRole.__members__:
            return owner
        if re.fullmatch(rf"{QUEUE_PREFIX}[A-Za-z0-9_.@-]{{1,100}}", owner):
            return owner
        raise ValueError(
            f"{owner!r} is not account_owner, owner_manager or queue:<name> "
            "(letters, digits, _ . @ -)"
        )


class Playbook(Frozen):
    id: Name
    version: int = Field(1, ge=1)
    title: str = Field(min_length=1, max_length=300)
    enabled: bool = True
    trigger: Trigger
    match: Match = Field(default_factory=Match)
    steps: list[Step] = Field(min_length=1, max_length=20)

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @model_validator(mode="after")
    def _unique_steps(self) -> Playbook:
        _refuse_repeats("step ids", [step.id for step in self.steps])
        return self


class PlaybookSet(Frozen):
    id: Name = "default"
    version: int = Field(1, ge=1)
    playbooks: list[Playbook] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def enabled(self) -> list[Playbook]:
        return [playbook for playbook in self.playbooks if playbook.enabled]

    def get(self, playbook_id: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.id == playbook_id), None)

    @model_validator(mode="after")
    def _unique_ids(self) -> PlaybookSet:
        _refuse_repeats("playbook ids", [playbook.id for playbook in self.playbooks])
        return self


def _refuse_repeats(what: str, names: list[str]) -> None:
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(doubled)}")


def parse_playbooks(document: object, source: str = "playbooks") -> PlaybookSet:
    """Raises ConfigError naming every bad field."""
    try:
        return PlaybookSet.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, document, source)) from None


def load_playbooks(path: Path = DEFAULT_PLAYBOOKS_FILE) -> PlaybookSet:
    return parse_playbooks(load_yaml(path), str(path))
