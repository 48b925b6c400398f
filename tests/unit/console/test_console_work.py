"""My work as a CSM reads it: open tasks in sections (overdue, due today, upcoming,
snoozed), the most valuable tier first (S, A, B, C), then the soonest due; due times
and history in words; an action's body as the alerts API takes it, the person named
as the one who acted; a task someone already closed, and an alerts API that does not
answer, said in words. The APIs are stand-ins behind the console's own clients."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from services.alerts.tasks.schemas import TaskChange, TaskRead
from services.console import work
from tests.unit.console.test_console_answers import Apis, signed_in

NOW = datetime(2026, 12, 8, 10, tzinfo=UTC)  # a Tuesday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _task(id: str, tier: str | None, due: datetime | None, **more: object) -> TaskRead:
    return TaskRead.model_validate(
        {
            "id": id,
            "account_id": f"acct-{id}",
            "playbook": "churn_save_s",
            "playbook_ref": "churn_save_s@1",
            "playbook_set": "default@1",
            "step": "call_sponsor",
            "trigger": "alert_opened",
            "episode": "alert:1",
            "alert_id": None,
            "title": f"task {id}",
            "checklist": [],
            "owner_role": "account_owner",
            "owner": "Kim",
            "state": "open",
            "outcome": None,
            "note": None,
            "tier": tier,
            "stage": None,
            "segment": None,
            "risk": None,
            "due_at": due,
            "escalate_at": None,
            "escalated_at": None,
            "snoozed_until": None,
            "cause_resolved_at": None,
            "created_at": NOW - DAY,
            "updated_at": NOW - DAY,
            "closed_at": None,
        }
        | more
    )


MIXED = [
    _task("up-c", "C", None),
    _task("late-b", "B", NOW - 2 * DAY),
    _task("late-s", "S", NOW - HOUR),
    _task("today-a", "A", NOW + 7 * HOUR),
    _task("today-s", "S", NOW + 7 * HOUR),
    _task("next-s", "S", NOW + DAY + 7 * HOUR),
    _task("later-a", "A", NOW + 3 * DAY),
    _task("later-none", None, NOW + DAY),
    _task("sleep-s", "S", NOW - 3 * DAY, snoozed_until=NOW + HOUR),
    _task("woke-a", "A", NOW - 3 * HOUR, snoozed_until=NOW - HOUR),
]


def test_open_tasks_fall_in_sections_each_most_valuable_tier_first_then_soonest() -> None:
    found = {s.name: [t.id for t in s.tasks] for s in work.sections(MIXED, NOW)}

    assert list(found) == ["overdue", "today", "upcoming", "snoozed"]
    assert found["overdue"] == ["late-s", "woke-a", "late-b"]  # a snooze that ended: back
    assert found["today"] == ["today-s", "today-a"]
    assert found["upcoming"] == ["next-s", "later-a", "up-c", "later-none"]  # no due last
    assert found["snoozed"] == ["sleep-s"]


def test_due_today_is_the_calendar_day_in_utc() -> None:
    late_evening = NOW.replace(hour=23, minute=30)
    assert work.section_of(_task("x", "S", late_evening), NOW) == "today"
    assert work.section_of(_task("x", "S", late_evening + HOUR), NOW) == "upcoming"


@pytest.mark.parametrize(
    ("due", "said"),
    [
        (None, "no due time"),
        (NOW - 20 * timedelta(minutes=1), "overdue by 20 minutes"),
        (NOW - 3 * HOUR, "overdue by 3 hours"),
        (NOW - 3 * DAY, "overdue by 3 days"),
        (NOW + 7 * HOUR, "due today, in 7 hours"),
        (NOW + DAY + 7 * HOUR, "due tomorrow"),
        (NOW + 4 * DAY, "due in 4 days"),
    ],
)
def test_due_times_in_words(due: datetime | None, said: str) -> None:
    assert work.due_words(due, NOW) == said


def test_an_account_shows_open_tasks_then_its_latest_closed_ones() -> None:
    closed = [
        _task(f"done-{n}", "S", None, state="done", outcome="saved", closed_at=NOW - n * HOUR)
        for n in (3, 1, 2)
    ]
    shown = work.account_order([*closed, MIXED[5], MIXED[2]], recent=2)

    assert [t.id for t in shown] == ["late-s", "next-s", "done-1", "done-2"]
    assert work.state_words(shown[2]) == "done: saved"


def test_history_in_words() -> None:
    change = TaskChange(
        at=NOW,
        actor="Kim",
        action="completed",
        changes={
            "state": ["open", "done"],
            "outcome": [None, "not_needed"],
            "closed_at": [None, NOW.isoformat()],
        },
    )
    assert work.change_words(change) == [
        "state: open -> done",
        "outcome: - -> not needed",
        "closed_at: - -> 2026-12-08 10:00 UTC",
    ]


def test_an_action_s_body_names_who_acts_and_what_each_action_needs() -> None:
    form = {"outcome": "saved", "note": " booked the renewal call ", "for": "", "owner": ""}
    assert work.patch_body("complete", form, "Kim") == {
        "action": "complete",
        "by": "Kim",
        "outcome": "saved",
        "note": "booked the renewal call",
    }
    assert work.patch_body("snooze", {"for": "3d"}, "Kim") == {
        "action": "snooze",
        "by": "Kim",
        "for": "3d",
    }
    assert work.patch_body("reassign", {"owner": "queue:save-desk"}, "Kim")["owner"] == (
        "queue:save-desk"
    )
    assert work.patch_body("skip", {}, "Kim") == {"action": "skip", "by": "Kim"}
    with pytest.raises(ValueError, match="complete with an outcome"):
        work.patch_body("complete", {"outcome": "won"}, "Kim")
    with pytest.raises(ValueError, match="snooze for one of"):
        work.patch_body("snooze", {"for": "1y"}, "Kim")
    with pytest.raises(ValueError, match="reassign to someone"):
        work.patch_body("reassign", {"owner": "  "}, "Kim")
    with pytest.raises(ValueError, match="the action must be one of"):
        work.patch_body("delete", {}, "Kim")


def _json(task: TaskRead, **more: object) -> dict[str, object]:
    return task.model_dump(mode="json") | more


async def test_the_page_lists_the_person_s_open_tasks_in_sections() -> None:
    apis = Apis()
    late = _json(MIXED[2], due_at=(datetime.now(UTC) - HOUR).isoformat())
    later = _json(MIXED[6], due_at=(datetime.now(UTC) + 3 * DAY).isoformat())
    apis.answers["/v1/tasks"] = {"tasks": [later, late], "next_cursor": None}
    seen: list[httpx.Request] = []
    answer = apis.answer

    def recorded(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    apis.answer = recorded  # type: ignore[method-assign]
    async with signed_in(apis) as client:
        page = await client.get("/work?tier=&done=skip")
        bad = await client.get("/work?tier=Z")

    assert page.status_code == 200, page.text
    assert re.findall(r'<tr id="task-([^"]+)"', page.text) == ["late-s", "later-a"]
    overdue = page.text.index('data-testid="work-overdue"')
    upcoming = page.text.index('data-testid="work-upcoming"')
    assert overdue < page.text.index("task late-s") < upcoming < page.text.index("task later-a")
    assert "overdue by 1 hour" in page.text and "acct-late-s" in page.text  # no name: its id
    assert "Task skipped." in page.text
    assert 'name="back" value="/work?tier="' in page.text  # its filters, not the message
    listed = next(dict(r.url.params) for r in seen if r.url.path == "/v1/tasks")
    assert listed == {"owner": "Kim", "state": "open", "limit": "500"}
    assert bad.status_code == 400 and "tier must be one of S, A, B, C" in bad.text


async def test_completing_a_task_patches_it_as_the_person_and_comes_back() -> None:
    apis = Apis()
    apis.answers["/v1/tasks/late-s"] = _json(MIXED[2], history=[])
    apis.answers["/v1/tasks"] = {"tasks": [], "next_cursor": None}
    sent: list[httpx.Request] = []
    answer = apis.answer

    def recorded(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(request)

    apis.answer = recorded  # type: ignore[method-assign]
    async with signed_in(apis) as client:
        done = await client.post(
            "/work/tasks/late-s/complete",
            data={"outcome": "saved", "note": "call booked", "back": "/work?tier=S"},
        )
        elsewhere = await client.post(
            "/work/tasks/late-s/skip", data={"back": "https://evil.example/"}
        )
        said = await client.get("/work?done=complete")

    assert done.status_code == 303 and done.headers["location"] == "/work?tier=S&done=complete"
    patch = next(r for r in sent if r.method == "PATCH")
    assert orjson.loads(patch.content) == {
        "action": "complete",
        "by": "Kim",
        "outcome": "saved",
        "note": "call booked",
    }
    assert elsewhere.headers["location"] == "/"  # never another site
    assert "Task completed." in said.text


async def test_a_task_already_closed_and_an_alerts_api_down_are_said_in_words() -> None:
    apis = Apis()
    closed = _json(
        MIXED[2],
        state="done",
        outcome="saved",
        history=[
            {"at": NOW.isoformat(), "actor": "Lee", "action": "completed", "changes": {}},
        ],
    )
    answer = apis.answer

    def conflict(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and apis.failure is None:
            message = "the task is done; only open tasks change"
            return httpx.Response(409, json={"code": "task_conflict", "message": message})
        return answer(request)

    apis.answers["/v1/tasks/late-s"] = closed
    apis.answer = conflict  # type: ignore[method-assign]
    async with signed_in(apis) as client:
        twice = await client.post("/work/tasks/late-s/skip", data={})
        apis.failure = httpx.ConnectError("refused")
        down = await client.post("/work/tasks/late-s/skip", data={})

    assert twice.status_code == 409
    assert "the task is already done: saved by Lee, 2026-12-08 10:00 UTC" in twice.text
    assert down.status_code == 503
    assert "The task was not changed: the alerts service did not answer" in down.text


async def test_an_account_s_tasks_with_history_as_a_fragment_and_as_a_page() -> None:
    apis = Apis()
    done = _json(MIXED[2], id="done-s", state="done", outcome="saved", closed_at=NOW.isoformat())
    apis.answers["/v1/tasks"] = {"tasks": [done, _json(MIXED[5])], "next_cursor": None}
    made = {"at": (NOW - DAY).isoformat(), "actor": "alerts", "action": "created", "changes": {}}
    completed = {
        "at": NOW.isoformat(),
        "actor": "Kim",
        "action": "completed",
        "changes": {"outcome": [None, "saved"]},
    }
    apis.answers["/v1/tasks/done-s"] = done | {"history": [made, completed]}
    apis.answers["/v1/tasks/next-s"] = _json(MIXED[5], history=[made])
    async with signed_in(apis) as client:
        fragment = await client.get("/work/accounts/acct-1", headers={"HX-Request": "true"})
        page = await client.get("/work/accounts/acct-1")

    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.findall(r'<article class="task" id="task-([^"]+)"', fragment.text) == [
        "next-s",
        "done-s",
    ]
    assert "done: saved" in fragment.text and "outcome: - -&gt; saved" in fragment.text
    assert 'action="/work/tasks/next-s/complete"' in fragment.text  # open: its forms
    assert 'action="/work/tasks/done-s/' not in fragment.text  # closed: history only
    assert page.status_code == 200 and "<h1>Tasks of" in page.text and "done: saved" in page.text
