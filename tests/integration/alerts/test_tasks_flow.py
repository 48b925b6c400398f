"""Owned work on the real Kafka and PostgreSQL: a high-risk score change of an S
account makes one task for its owner, due the next business day; a repeat makes
none; overdue, it is escalated once to a real webhook receiver; completed as
"saved" it is listed by outcome and tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.alerts import repository as alerts_repository
from services.alerts.configuration import SetupCache, load_files
from services.alerts.models import Delivery, Task
from services.alerts.playbooks.loader import PLAYBOOKS_KEY, PlaybookCache
from services.alerts.playbooks.model import load_playbooks
from services.alerts.rules.engine import alert_id
from services.alerts.settings import AlertsSettings
from services.alerts.tasks import repository
from services.alerts.tasks.escalation import ESCALATION_RULE, Escalator
from services.alerts.tasks.service import TaskPolicy, plan
from shared.db import SessionFactory
from shared.scores import Risk, Tier
from tests.integration.alerts.conftest import ADMIN, AlertsStack, StackFactory
from tests.support.alerts_messages import enriched_change, facts, later, opened
from tests.support.alerts_receivers import HttpReceiver
from tests.support.clock import FakeClock
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FRIDAY = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
MONDAY_END = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
OWNER = "dana@vendor.example"


def _channels(url: str) -> dict[str, Any]:
    """Alerts go to /alerts; overdue tasks take the escalation route to /escalations."""
    return {
        "channels": [
            {"id": "alerts", "kind": "webhook", "url": f"{url}/alerts"},
            {"id": "escalations", "kind": "webhook", "url": f"{url}/escalations"},
        ],
        "route": {
            "receivers": ["alerts"],
            "routes": [{"match": {"rule": [ESCALATION_RULE]}, "receivers": ["escalations"]}],
        },
    }


async def _tasks(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/tasks", params=params)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


async def _count_tasks(stack: AlertsStack) -> int:
    return len(await _tasks(stack.api, limit="500"))


async def test_a_risky_s_account_gets_one_task_escalated_once_then_saved(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    clock = FakeClock(FRIDAY)
    async with (
        serve(receiver.app()) as url,
        alerts_stack(
            channels=_channels(url), clock=clock, alerts_task_escalation_interval_s=0.05
        ) as stack,
    ):
        risky = enriched_change(
            account_id="big",
            tier=Tier.S,
            risk=Risk.high,
            previous_risk=Risk.low,
            risk_reasons=["active users fell by half"],
            computed_at=FRIDAY,
            account=facts(owner_csm_email=OWNER, last_usage_at=FRIDAY),
        )
        calm_later = later(risky, timedelta(minutes=5), risk=Risk.high)
        await stack.send(risky, risky, calm_later)
        await wait_for(lambda: stack.applied({"big": 2}), 30, "both messages applied")

        owned = await _tasks(stack.api, owner=OWNER)
        assert len(owned) == 1 and await _count_tasks(stack) == 2  # and the manager's
        (task,) = owned
        assert task["playbook_ref"] == "churn_save_s@1"
        assert task["playbook_set"] == "default@1"
        assert task["alert_id"] == alert_id("big", "churn_risk_raised", 1)
        assert datetime.fromisoformat(task["due_at"]) == MONDAY_END
        assert task["state"] == "open" and not task["overdue"]

        # Monday 21:00 is past due plus the S grace (4 h): escalated once.
        clock.now = MONDAY_END + timedelta(hours=4, minutes=1)
        await wait_for(lambda: _escalations(receiver, 2), 30, "both tasks escalated")
        overdue = await _tasks(stack.api, overdue="true", owner=OWNER)
        assert [t["id"] for t in overdue] == [task["id"]] and overdue[0]["overdue"]

        response = await stack.api.patch(
            f"/v1/tasks/{task['id']}",
            json={
                "action": "complete",
                "outcome": "saved",
                "note": "call booked",
                "by": "dana",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "done"
        saved = await _tasks(stack.api, outcome="saved", tier="S")
        detail = (await stack.api.get(f"/v1/tasks/{task['id']}")).json()

    assert [t["id"] for t in saved] == [task["id"]]
    assert [(h["action"], h["actor"]) for h in detail["history"]] == [
        ("created", "vitals"),
        ("escalated", "vitals"),
        ("completed", "dana"),
    ]
    assert detail["history"][2]["changes"]["outcome"] == [None, "saved"]
    hooks = receiver.at("/escalations")
    assert len({r.headers["webhook-id"] for r in hooks}) == len(hooks) == 2
    bodies = [r.json() for r in hooks]
    assert {b["rule"] for b in bodies} == {ESCALATION_RULE}
    assert any(b["details"]["task"]["owner"] == OWNER for b in bodies)
    assert len(receiver.at("/alerts")) == 1  # the alert itself, on its own route


async def _escalations(receiver: HttpReceiver, count: int) -> bool:
    return len(receiver.at("/escalations")) >= count


async def test_a_stored_task_is_never_made_twice_nor_escalated_twice(
    sessions: SessionFactory,
) -> None:
    """What a replayed batch does: the same rows again insert nothing, and the
    escalation job finds nothing left to escalate."""
    settings = AlertsSettings()
    policy = TaskPolicy.from_settings(settings)
    change = enriched_change(account_id="rep", tier=Tier.S, risk=Risk.high, computed_at=FRIDAY)
    rows = plan(load_playbooks(), change, [opened("risk", {}, account_id="rep")], FRIDAY, policy)

    async with sessions() as session, session.begin():
        first = await repository.insert_new(session, rows, FRIDAY)
    async with sessions() as session, session.begin():
        second = await repository.insert_new(session, rows, FRIDAY + timedelta(hours=1))

    assert len(first) == 2 and second == []
    escalator = Escalator(
        settings, SetupCache(load_files(settings)), sessions, lambda: FRIDAY + timedelta(days=7)
    )
    assert await escalator.escalate_due() == 2
    assert await escalator.escalate_due() == 0
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task))
        escalated = await session.scalar(
            select(func.count()).select_from(Task).where(Task.escalated_at.is_not(None))
        )
        rows_out = await session.scalar(select(func.count()).select_from(Delivery))
    # Without channels there is no one to tell, yet each task counts as escalated once.
    assert (tasks, escalated, rows_out) == (2, 2, 0)


async def test_acting_needs_an_open_task_and_a_known_outcome(alerts_stack: StackFactory) -> None:
    clock = FakeClock(FRIDAY)
    async with alerts_stack(clock=clock) as stack:
        change = enriched_change(account_id="mid", tier=Tier.A, risk=Risk.high, computed_at=FRIDAY)
        await stack.send(change)
        await wait_for(lambda: stack.applied({"mid": 1}), 30, "the message applied")
        (task,) = await _tasks(stack.api, account_id="mid")
        path = f"/v1/tasks/{task['id']}"

        bad = await stack.api.patch(path, json={"action": "complete", "outcome": "maybe"})
        missing = await stack.api.patch(path, json={"action": "reassign"})
        moved = await stack.api.patch(path, json={"action": "reassign", "owner": "queue:team-b"})
        snoozed = await stack.api.patch(path, json={"action": "snooze", "for": "2d"})
        skipped = await stack.api.patch(path, json={"action": "skip", "note": "duplicate"})
        again = await stack.api.patch(path, json={"action": "skip"})
        unknown = await stack.api.get("/v1/tasks/no-such-task")
        bad_cursor = await stack.api.get("/v1/tasks", params={"cursor": "x"})

    assert task["due_at"] == "2026-12-09T17:00:00Z"  # A: 3 business days after Friday
    assert (bad.status_code, missing.status_code) == (422, 422)
    assert moved.json()["owner"] == "queue:team-b"
    assert snoozed.json()["snoozed_until"] == "2026-12-06T10:00:00Z"
    assert skipped.json()["state"] == "skipped"
    assert again.status_code == 409 and again.json()["error"] == "task_conflict"
    assert (unknown.status_code, bad_cursor.status_code) == (404, 400)


async def test_keyset_pages_cover_every_task_once(sessions: SessionFactory) -> None:
    policy = TaskPolicy.from_settings(AlertsSettings())
    rows = []
    for n in range(7):
        change = enriched_change(account_id=f"p{n}", tier=Tier.B, risk=Risk.high)
        rows += plan(
            load_playbooks(), change, [opened("r", {}, account_id=f"p{n}")], FRIDAY, policy
        )
    async with sessions() as session, session.begin():
        await repository.insert_new(session, rows, FRIDAY)  # one created_at for all: ties
    seen: list[str] = []
    after = None
    async with sessions() as session:
        while True:
            page = await repository.list_tasks(session, repository.TaskFilter(), after, 3)
            seen += [task.id for task in page]
            if len(page) < 3:
                break
            after = (page[-1].created_at, page[-1].id)

    assert sorted(seen) == sorted(row["id"] for row in rows) and len(seen) == 7


async def test_playbooks_put_through_the_api_are_in_force_without_a_restart(
    alerts_stack: StackFactory,
) -> None:
    team = {
        "id": "team",
        "version": 3,
        "playbooks": [
            {
                "id": "any_churn",
                "title": "Any churn risk",
                "trigger": {"kind": "alert_opened", "rule": "churn_risk_raised"},
                "steps": [{"id": "call", "title": "Call", "owner": "queue:save-desk"}],
            }
        ],
    }
    async with alerts_stack(clock=FakeClock(FRIDAY)) as stack:
        refused = await stack.api.put(
            "/v1/playbooks", json={"playbooks": [{"id": "x"}]}, headers=ADMIN
        )
        put = await stack.api.put("/v1/playbooks", json=team, headers=ADMIN)
        await stack.send(enriched_change(account_id="new", tier=Tier.S, risk=Risk.high))
        await wait_for(lambda: stack.applied({"new": 1}), 30, "the message applied")
        tasks = await _tasks(stack.api, account_id="new")
        current = (await stack.api.get("/v1/playbooks", headers=ADMIN)).json()

    assert refused.status_code == 422
    assert "playbooks[0] (x).title" in str(refused.json())
    assert put.status_code == 200, put.text
    assert [(t["playbook_set"], t["playbook_ref"], t["owner"]) for t in tasks] == [
        ("team@3", "any_churn@1", "queue:save-desk")
    ]
    assert (current["source"], current["ref"]) == ("api", "team@3")


async def test_a_resolved_alert_leaves_its_task_open_marked_cause_resolved(
    alerts_stack: StackFactory,
) -> None:
    async with alerts_stack(clock=FakeClock(FRIDAY)) as stack:
        risky = enriched_change(account_id="fix", tier=Tier.B, risk=Risk.high, computed_at=FRIDAY)
        calm = later(risky, timedelta(hours=1), risk=Risk.low)
        await stack.send(risky, calm)
        await wait_for(lambda: stack.applied({"fix": 2}), 30, "both messages applied")
        (task,) = await _tasks(stack.api, account_id="fix")
        detail = (await stack.api.get(f"/v1/tasks/{task['id']}")).json()

    assert task["state"] == "open" and task["cause_resolved"]
    assert [h["action"] for h in detail["history"]] == ["created", "cause_resolved"]


async def test_a_playbook_started_by_hand_makes_its_tasks_once_per_key(
    alerts_stack: StackFactory,
) -> None:
    run = {"account_id": "acme", "key": "qbr-q4", "tier": "S", "owner": OWNER}
    async with alerts_stack(clock=FakeClock(FRIDAY)) as stack:
        first = await stack.api.post("/v1/playbooks/manual_health_review/runs", json=run)
        again = await stack.api.post("/v1/playbooks/manual_health_review/runs", json=run)
        not_manual = await stack.api.post("/v1/playbooks/churn_save_s/runs", json=run)
        listed = await _tasks(stack.api, account_id="acme")

    assert first.status_code == 200, first.text
    (task,) = first.json()["tasks"]
    assert (task["owner"], task["episode"], task["due_at"]) == (
        OWNER,
        "manual:qbr-q4",
        "2026-12-07T17:00:00Z",
    )
    assert again.json()["tasks"][0]["id"] == task["id"]
    assert not_manual.status_code == 404
    assert [t["id"] for t in listed] == [task["id"]]


async def test_a_stored_set_this_release_cannot_read_leaves_the_files_in_force(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session, session.begin():
        await alerts_repository.raise_config_revision(session)
        await alerts_repository.save_config_document(
            session, PLAYBOOKS_KEY, {"playbooks": [{"id": "from_later"}]}, FRIDAY
        )
    cache = PlaybookCache(load_playbooks())

    async with sessions() as session:
        playbooks, source = await cache.current(session)

    assert (playbooks.ref, source) == ("default@1", "file")
