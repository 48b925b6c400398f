"""The tasks API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.alerts.documents import JsonObject
from services.alerts.durations import Duration
from services.alerts.tasks.service import Outcome, TaskState


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    account_id: str
    playbook: str
    playbook_ref: str = Field(description="id@version of the playbook that made the task.")
    playbook_set: str = Field(description="id@version of the playbooks file.")
    step: str
    trigger: str
    episode: str
    alert_id: str | None
    title: str
    checklist: list[str]
    owner_role: str
    owner: str
    state: TaskState
    outcome: Outcome | None
    note: str | None
    tier: str | None
    stage: str | None
    segment: str | None
    risk: str | None
    due_at: datetime | None
    overdue: bool = Field(False, description="Open and past its due time.")
    escalate_at: datetime | None
    escalated_at: datetime | None
    snoozed_until: datetime | None
    cause_resolved: bool = Field(False, description="The alert that started it resolved.")
    cause_resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TaskList(BaseModel):
    tasks: list[TaskRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TaskChange(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    changes: JsonObject = Field(description="Each field changed: [before, after].")


class TaskDetail(TaskRead):
    history: list[TaskChange]


class TaskPatch(BaseModel):
    """``complete`` (with ``outcome``), ``skip``, ``reassign`` (with ``owner``) or
    ``snooze`` (with ``until`` a time or ``for`` a duration like ``2d``); ``note`` with
    any of them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["complete", "skip", "reassign", "snooze"]
    outcome: Outcome | None = None
    note: str | None = Field(None, max_length=5000)
    owner: str | None = Field(None, min_length=1, max_length=320)
    until: AwareDatetime | None = None
    for_: Duration | None = Field(None, alias="for")
    by: str | None = Field(None, max_length=200, description="Who acts (default: the key).")

    @model_validator(mode="after")
    def _fields_of_action(self) -> TaskPatch:
        needs = {"complete": "outcome", "reassign": "owner"}
        wanted = needs.get(self.action)
        if wanted is not None and getattr(self, wanted) is None:
            raise ValueError(f"{self.action} needs {wanted}")
        if self.action == "snooze" and (self.until is None) == (self.for_ is None):
            raise ValueError("snooze needs exactly one of until and for")
        if self.action != "complete" and self.outcome is not None:
            raise ValueError("outcome goes with complete only")
        return self


class PlaybookRun(BaseModel):
    """Start a playbook by hand for an account."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=200)
    key: str = Field(
        min_length=1,
        max_length=200,
        description="Names this run: the same key again starts nothing new.",
    )
    tier: Literal["S", "A", "B", "C"] | None = None
    owner: str | None = Field(None, max_length=320, description="The account's owner CSM.")
    segment: str | None = Field(None, max_length=200)


class PlaybooksRead(BaseModel):
    source: Literal["file", "api"]
    ref: str = Field(description="id@version of the set in force.")
    document: JsonObject
