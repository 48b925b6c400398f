"""Tasks: due times on business days, owners, ids per trigger episode, and actions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.alerts.playbooks.model import load_playbooks
from services.alerts.rules import engine
from services.alerts.settings import AlertsSettings
from services.alerts.tasks.service import (
    Complete,
    Outcome,
    Reassign,
    Skip,
    Snooze,
    TaskConflict,
    TaskPolicy,
    changes_for,
    history_changes,
    plan,
)
from services.alerts.tasks.service_levels import BusinessCalendar, ServiceLevels
from shared.scores import Risk, Stage, Tier
from tests.support.alerts_messages import enriched_change, facts, opened

FRIDAY = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
LEVELS = {"S": 1, "A": 3, "B": 5, "C": None}
GRACE = {"S": timedelta(hours=4)}


def test_a_friday_task_for_an_s_account_is_due_monday() -> None:
    levels = ServiceLevels(LEVELS, GRACE)

    due = levels.due("S", FRIDAY, None)

    assert due == datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
    assert due is not None and due.strftime("%A") == "Monday"
    assert levels.escalate_at("S", due) == datetime(2026, 12, 7, 21, 0, tzinfo=UTC)


def test_holidays_are_skipped() -> None:
    christmas = BusinessCalendar(holidays=(date(2026, 12, 25), date(2026, 12, 28)))
    levels = ServiceLevels(LEVELS, GRACE, christmas)

    # Thursday the 24th + 1 business day: not Friday 25th, not Monday 28th.
    assert levels.due("S", datetime(2026, 12, 24, 9, tzinfo=UTC), None) == datetime(
        2026, 12, 29, 17, tzinfo=UTC
    )
    # Tier A, 3 days from Wednesday the 23rd: 24th, 29th, 30th.
    assert levels.due("A", datetime(2026, 12, 23, 9, tzinfo=UTC), None) == datetime(
        2026, 12, 30, 17, tzinfo=UTC
    )


def test_a_task_made_on_a_day_off_counts_from_the_next_business_day() -> None:
    saturday = datetime(2026, 12, 5, 10, tzinfo=UTC)

    assert ServiceLevels(LEVELS, GRACE).due("S", saturday, None) == datetime(
        2026, 12, 8, 17, tzinfo=UTC
    )


def test_the_calendar_follows_the_company_time_zone_and_week() -> None:
    # 23:30 UTC on Friday is already Saturday in Tokyo; the week there is Sun-Thu.
    calendar = BusinessCalendar(
        weekdays="Sun Mon Tue Wed Thu", timezone="Asia/Tokyo", day_ends_at=time(18, 0)
    )
    levels = ServiceLevels(LEVELS, GRACE, calendar)

    due = levels.due("S", datetime(2026, 12, 4, 23, 30, tzinfo=UTC), None)

    # Saturday -> Sunday is the first business day, +1 = Monday 18:00 Tokyo.
    assert due == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_tier_c_has_no_due_time_unless_a_step_sets_one() -> None:
    levels = ServiceLevels(LEVELS, GRACE)

    assert levels.due("C", FRIDAY, None) is None
    assert levels.due(None, FRIDAY, None) is None
    assert levels.due("C", FRIDAY, 10) == datetime(2026, 12, 18, 17, tzinfo=UTC)
    assert levels.escalate_at("C", None) is None


def _policy() -> TaskPolicy:
    settings = AlertsSettings(alerts_task_managers={"Dana@vendor.example": "maria@vendor.example"})
    return TaskPolicy.from_settings(settings)


def test_an_s_churn_alert_makes_the_save_play_tasks_for_owner_and_manager() -> None:
    change = enriched_change(tier=Tier.S, risk=Risk.high, computed_at=FRIDAY)
    decision = opened("risk high", {})

    rows = plan(load_playbooks(), change, [decision], FRIDAY, _policy())

    assert [(r["step"], r["owner"]) for r in rows] == [
        ("call_sponsor", "dana@vendor.example"),
        ("manager_review", "maria@vendor.example"),
    ]
    first = rows[0]
    assert first["playbook_ref"] == "churn_save_s@1" and first["playbook_set"] == "default@1"
    assert first["due_at"] == datetime(2026, 12, 7, 17, tzinfo=UTC)
    assert first["alert_id"] == decision.alert.id and first["state"] == "open"
    # The same trigger episode makes the same ids, whenever it is replayed.
    again = plan(load_playbooks(), change, [decision], FRIDAY + timedelta(hours=1), _policy())
    assert [r["id"] for r in again] == [r["id"] for r in rows]


def test_without_an_owner_or_a_manager_the_task_goes_to_the_unassigned_queue() -> None:
    change = enriched_change(
        tier=Tier.S,
        risk=Risk.high,
        account=facts(owner_csm_email=None, owner_csm_slack=None),
    )

    rows = plan(load_playbooks(), change, [opened("r", {})], FRIDAY, _policy())

    assert {r["owner"] for r in rows} == {"queue:unassigned"}


def test_the_week_2_check_is_due_ten_business_days_after_onboarding_starts() -> None:
    change = enriched_change(tier=Tier.B, stage=Stage.onboarding, computed_at=FRIDAY)

    rows = plan(load_playbooks(), change, [], FRIDAY, _policy())

    due = {r["step"]: r["due_at"] for r in rows}
    assert due == {
        "kickoff": datetime(2026, 12, 11, 17, tzinfo=UTC),
        "week_2_check": datetime(2026, 12, 18, 17, tzinfo=UTC),
    }


OPEN = {"state": "open", "escalate_at": FRIDAY, "escalated_at": None, "owner": "dana"}


def test_completing_records_the_outcome_and_note() -> None:
    name, changes = changes_for(OPEN, Complete(Outcome.saved, "renewed"), FRIDAY, timedelta(0))

    assert name == "completed"
    assert changes == {"state": "done", "outcome": "saved", "note": "renewed", "closed_at": FRIDAY}
    assert history_changes(OPEN, changes)["state"] == ["open", "done"]


def test_a_snooze_holds_escalation_until_after_it_plus_grace() -> None:
    until = FRIDAY + timedelta(days=3)

    name, changes = changes_for(OPEN, Snooze(until), FRIDAY, timedelta(hours=4))

    assert name == "snoozed"
    assert changes == {"snoozed_until": until, "escalate_at": until + timedelta(hours=4)}


def test_reassign_and_skip_and_nothing_on_a_closed_task() -> None:
    assert changes_for(OPEN, Reassign("sam"), FRIDAY, timedelta(0)) == (
        "reassigned",
        {"owner": "sam"},
    )
    assert changes_for(OPEN, Skip("dup"), FRIDAY, timedelta(0))[1]["state"] == "skipped"
    with pytest.raises(TaskConflict, match="only open tasks change"):
        changes_for({**OPEN, "state": "done"}, Skip(), FRIDAY, timedelta(0))
    with pytest.raises(TaskConflict, match="future"):
        changes_for(OPEN, Snooze(FRIDAY), FRIDAY, timedelta(0))


def test_resolutions_are_no_trigger() -> None:
    decision = opened("risk high", {})
    resolved = engine.Decision(engine.Transition.resolved, decision.alert, True, "", {})
    change = enriched_change(tier=Tier.S, risk=Risk.low)

    assert plan(load_playbooks(), change, [resolved], FRIDAY, _policy()) == []
