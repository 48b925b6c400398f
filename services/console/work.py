"""A person's tasks as "My work" shows them, and an account's tasks on its page: which
section a task is in (overdue, due today, upcoming, snoozed), their order (the most
valuable tier first: S, A, B, C; then the soonest due), due times in words, history in
words, and the body of an action on a task as the alerts API takes it. Pure: the
routes (``routes/work.py``) read the API and hand the time in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.alerts.tasks.schemas import TaskChange, TaskRead

TIERS = ("S", "A", "B", "C")
OUTCOMES = {
    "reached": "reached",
    "saved": "saved",
    "escalated": "escalated",
    "lost": "lost",
    "not_needed": "not needed",
}
SNOOZES = {"4h": "4 hours", "1d": "a day", "3d": "3 days", "7d": "a week"}
ACTIONS = ("complete", "skip", "snooze", "reassign")
SECTIONS = {
    "overdue": "Overdue",
    "today": "Due today",
    "upcoming": "Upcoming",
    "snoozed": "Snoozed",
}
DONE = {  # what the page says after an action, by code only (no words from a URL)
    "complete": "Task completed.",
    "skip": "Task skipped.",
    "snooze": "Task snoozed.",
    "reassign": "Task reassigned.",
}
MOST_OWNER = 320
MOST_NOTE = 5000
_LAST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Section:
    name: str  # a key of SECTIONS
    title: str
    tasks: list[TaskRead]


def section_of(task: TaskRead, now: datetime) -> str:
    """Snoozed while its snooze lasts; else overdue past its due time, due today (UTC),
    or upcoming (later, or no due time)."""
    if task.snoozed_until is not None and task.snoozed_until > now:
        return "snoozed"
    if task.due_at is None:
        return "upcoming"
    if task.due_at < now:
        return "overdue"
    if task.due_at.astimezone(UTC).date() == now.astimezone(UTC).date():
        return "today"
    return "upcoming"


def tier_rank(tier: str | None) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


def work_order(task: TaskRead) -> tuple[int, datetime, datetime, str]:
    """The most valuable tier first, then the soonest due (none last), then the oldest."""
    return (tier_rank(task.tier), task.due_at or _LAST, task.created_at, task.id)


def sections(tasks: Iterable[TaskRead], now: datetime) -> list[Section]:
    """The open tasks in their sections, in the order of ``SECTIONS``, each sorted by
    ``work_order``; every section is there, empty or not."""
    grouped: dict[str, list[TaskRead]] = {name: [] for name in SECTIONS}
    for task in tasks:
        grouped[section_of(task, now)].append(task)
    return [
        Section(name, SECTIONS[name], sorted(found, key=work_order))
        for name, found in grouped.items()
    ]


def account_order(tasks: Iterable[TaskRead], recent: int) -> list[TaskRead]:
    """An account's open tasks (soonest due first), then its ``recent`` latest closed
    ones (the last closed first)."""
    found = list(tasks)
    open_ = sorted((t for t in found if t.state == "open"), key=work_order)
    closed = sorted(
        (t for t in found if t.state != "open"),
        key=lambda t: t.closed_at or t.updated_at,
        reverse=True,
    )
    return open_ + closed[:recent]


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours // 24} days"


def due_words(due_at: datetime | None, now: datetime) -> str:
    """``overdue by 3 hours``, ``due today, in 5 hours``, ``due tomorrow``, ``due in 4
    days`` (calendar days, UTC) or ``no due time``."""
    if due_at is None:
        return "no due time"
    if due_at < now:
        return f"overdue by {_span(now - due_at)}"
    days = (due_at.astimezone(UTC).date() - now.astimezone(UTC).date()).days
    if days == 0:
        return f"due today, in {_span(due_at - now)}"
    if days == 1:
        return "due tomorrow"
    return f"due in {days} days"


def state_words(task: TaskRead) -> str:
    """``open``, ``snoozed until ...``, ``done: saved`` or ``skipped``."""
    if task.state == "done":
        outcome = OUTCOMES.get(task.outcome or "", task.outcome or "-")
        return f"done: {outcome}"
    return str(task.state)


def change_words(change: TaskChange) -> list[str]:
    """Each field the change moved, as ``outcome: - -> saved``."""
    said: list[str] = []
    for field, values in change.changes.items():
        if isinstance(values, list) and len(values) == 2:
            before, after = (_shown(v) for v in values)
            said.append(f"{field}: {before} -> {after}")
        else:
            said.append(f"{field}: {_shown(values)}")
    return said


def _shown(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return OUTCOMES.get(value, value)
        if at.tzinfo is not None:
            return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return value
    return str(value)


def patch_body(action: str, form: Mapping[str, str], by: str) -> dict[str, str]:
    """The alerts API's ``PATCH /v1/tasks/{id}`` body for ``action`` from a form's
    fields; ``ValueError`` in words when the form lacks what the action needs."""
    if action not in ACTIONS:
        raise ValueError(f"the action must be one of {', '.join(ACTIONS)}")
    body = {"action": action, "by": by}
    note = form.get("note", "").strip()
    if len(note) > MOST_NOTE:
        raise ValueError(f"a note holds at most {MOST_NOTE:,} characters")
    if note:
        body["note"] = note
    if action == "complete":
        outcome = form.get("outcome", "")
        if outcome not in OUTCOMES:
            raise ValueError(f"complete with an outcome: {', '.join(OUTCOMES.values())}")
        body["outcome"] = outcome
    elif action == "snooze":
        duration = form.get("for", "")
        if duration not in SNOOZES:
            raise ValueError(f"snooze for one of {', '.join(SNOOZES.values())}")
        body["for"] = duration
    elif action == "reassign":
        owner = form.get("owner", "").strip()
        if not owner or len(owner) > MOST_OWNER:
            raise ValueError("reassign to someone: an e-mail, a handle or queue:<name>")
        body["owner"] = owner
    return body
