"""The routing tree: which channels an alert goes to. Pure, like Alertmanager's.

The root route matches every alert. Its child routes are tried in order; the first
that matches takes the alert (and routes it further down its own children), unless
it says ``continue: true``, in which case the next siblings are tried too. When no
child matches, the route's own ``receivers`` get the alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.alerts.documents import ConfigError, describe_errors
from services.alerts.rules.engine import Labels
from shared.scores import Risk, Tier

ChannelId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class Match(BaseModel):
    """All given fields must match; a field matches when the alert's value is in its list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: list[Tier] | None = None
    risk: list[Risk] | None = None
    rule: list[str] | None = None
    segment: list[str] | None = None
    owner: list[str] | None = Field(None, description="Owner CSM e-mail or Slack handle.")
    account_id: list[str] | None = None

    def matches(self, labels: Labels) -> bool:
        checks = (
            _among(self.tier, labels.tier),
            _among(self.risk, labels.risk),
            _among(self.rule, labels.rule),
            _among(self.segment, labels.segment),
            _among(self.account_id, labels.account_id),
            self.owner is None or any(_among(self.owner, o) for o in labels.owners),
        )
        return all(checks)


def _among(allowed: Sequence[str] | None, value: str | None) -> bool:
    if allowed is None:
        return True
    folded = {str(a).casefold() for a in allowed}
    return value is not None and value.casefold() in folded


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: Match = Field(default_factory=Match)
    receivers: list[ChannelId] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


class RoutingTree(BaseModel):
    """The document at ``route:`` in the channels file and behind ``/v1/routes``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: list[ChannelId] = Field(
        default_factory=list, description="The default route: alerts no child route takes."
    )
    routes: list[Route] = Field(default_factory=list)

    def receivers_for(self, labels: Labels) -> list[str]:
        """The channels ``labels`` go to, in order, each once."""
        found = _walk(self.receivers, self.routes, labels)
        return list(dict.fromkeys(found))

    def referenced(self) -> set[str]:
        names = set(self.receivers)
        pending = list(self.routes)
        while pending:
            route = pending.pop()
            names.update(route.receivers)
            pending.extend(route.routes)
        return names


def _walk(own: list[str], children: list[Route], labels: Labels) -> list[str]:
    taken: list[str] = []
    matched = False
    for child in children:
        if not child.match.matches(labels):
            continue
        matched = True
        taken += _walk(child.receivers, child.routes, labels)
        if not child.continue_:
            break
    return taken if matched else list(own)


def parse_routes(document: object, channels: set[str], source: str = "route") -> RoutingTree:
    """A validated tree whose receivers all exist among ``channels``."""
    try:
        tree = RoutingTree.model_validate(document or {})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, document, source)) from None
    unknown = sorted(tree.referenced() - channels)
    if unknown:
        raise ConfigError(f"{source} is invalid:\n  receivers: unknown channels {unknown}")
    return tree
