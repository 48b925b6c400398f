"""What CSMs did over the history, for ``vitals backtest --overrides/--silences``.

Each file is YAML (JSON is YAML too), as the services' other inputs (rules,
scorecards): a list under ``overrides:`` or ``silences:``. An entry is checked with
the request model of the API that takes it live (the scoring API's override, the
alerts API's silence), plus the times a replay needs in place of the request's
moment: when an override was set (and lifted), when a silence starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.alerts.rules.engine import Silence
from services.alerts.schemas import SilenceCreate
from services.backtest.replay import CsmOverride
from services.backtest.run import Actions, BacktestError
from services.scoring.api import MAX_OVERRIDE_DAYS
from services.scoring.domain import Override
from services.scoring.schemas import OverrideCreate
from shared.errors import times_out_of_range

M = TypeVar("M", bound=BaseModel)


class OverrideEntry(OverrideCreate):
    """An override as ``POST /v1/accounts/{account_id}/overrides`` takes it, set at
    ``set_at`` and, if lifted (``DELETE``), out of force from ``lifted_at``."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=200)
    set_at: AwareDatetime = Field(description="When the CSM set it.")
    lifted_at: AwareDatetime | None = Field(None, description="When it was lifted, if.")
    # Who and why are the audit's; a replay needs neither.
    reason: str = Field("", max_length=2000)
    created_by: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _in_order(self) -> OverrideEntry:
        _utc(set_at=self.set_at, expires_at=self.expires_at, lifted_at=self.lifted_at)
        if self.expires_at <= self.set_at:
            raise ValueError("expires_at must be after set_at")
        if self.expires_at - self.set_at > timedelta(days=MAX_OVERRIDE_DAYS):
            raise ValueError(f"expires_at must be within {MAX_OVERRIDE_DAYS} days of set_at")
        lifted = self.lifted_at
        if lifted is not None and not self.set_at < lifted < self.expires_at:
            raise ValueError("lifted_at must be after set_at and before expires_at")
        return self


class SilenceEntry(SilenceCreate):
    """A silence as ``POST /v1/silences`` takes it, with ``starts_at`` required: the
    API's default, the moment it was made, has no meaning in a replay."""

    starts_at: AwareDatetime

    @model_validator(mode="after")
    def _in_range(self) -> SilenceEntry:
        _utc(starts_at=self.starts_at, ends_at=self.ends_at)
        return self


class OverridesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: list[OverrideEntry]


class SilencesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    silences: list[SilenceEntry]


def load_actions(overrides: Iterable[Path] = (), silences: Iterable[Path] = ()) -> Actions:
    """Every file's overrides and silences, or :class:`BacktestError` naming the file,
    the entry and the field of each problem."""
    actions = Actions()
    for path in overrides:
        actions.overrides += load_overrides(path)
    for path in silences:
        actions.silences += load_silences(path)
    return actions


def load_overrides(path: Path) -> list[CsmOverride]:
    document = _read(path)
    found = _parse(OverridesFile, document, path, "overrides").overrides
    return [
        CsmOverride(
            entry.account_id,
            Override(f"{path}#{n}", entry.field, entry.value, entry.expires_at),
            entry.set_at,
            entry.lifted_at,
        )
        for n, entry in enumerate(found)
    ]


def load_silences(path: Path) -> list[Silence]:
    document = _read(path)
    found = _parse(SilencesFile, document, path, "silences").silences
    return [
        Silence(
            id=f"{path}#{n}",
            ends_at=entry.ends_at,
            starts_at=entry.starts_at,
            account_id=entry.account_id,
            rule=entry.rule,
            tier=entry.tier.value if entry.tier else None,
            owner=entry.owner,
        )
        for n, entry in enumerate(found)
    ]


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: not valid YAML or JSON: {exc}") from None


def _parse(model: type[M], document: object, path: Path, key: str) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = [_problem(error["loc"], error["msg"], document, key) for error in exc.errors()]
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise BacktestError(f"{path} is invalid:\n{lines}") from None


def _problem(loc: tuple[int | str, ...], message: str, document: object, key: str) -> str:
    """``overrides[2] (account acme).value: ...``: the entry by its place and account."""
    if len(loc) < 2 or loc[0] != key or not isinstance(loc[1], int):
        where = ".".join(str(part) for part in loc) or f"the file (a list under {key}:)"
        return f"{where}: {message}"
    entries = document.get(key) if isinstance(document, dict) else None
    entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
    account = entry.get("account_id") if isinstance(entry, dict) else None
    where = f"{key}[{loc[1]}]" + (f" (account {account})" if isinstance(account, str) else "")
    field = ".".join(str(part) for part in loc[2:])
    return f"{where}{'.' + field if field else ''}: {message}"


def _utc(**times: datetime | None) -> None:
    """Times past year 9999 (or before year 1) in UTC are refused, as the APIs do."""
    if problems := times_out_of_range("entry", **times):
        names = ", ".join(str(p["loc"][-1]) for p in problems)
        raise ValueError(f"{names}: {problems[0]['message']}")
