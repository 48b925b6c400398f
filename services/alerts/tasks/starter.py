"""The consumer's step for tasks: in the batch's transaction, store the tasks the
playbooks start on the batch's verdicts, and mark those whose alert resolved."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.playbooks.loader import PlaybookCache
from services.alerts.playbooks.model import load_playbooks
from services.alerts.rules import engine
from services.alerts.service import Verdict, start_tasks
from services.alerts.settings import AlertsSettings
from services.alerts.tasks import repository
from services.alerts.tasks.service import TaskPolicy


class TaskStarter:
    def __init__(self, settings: AlertsSettings) -> None:
        self.policy = TaskPolicy.from_settings(settings)
        self.playbooks = PlaybookCache(load_playbooks(settings.alerts_playbooks_file))

    async def apply(
        self, session: AsyncSession, verdicts: Sequence[Verdict[Any]], now: datetime
    ) -> list[str]:
        """The ids of the tasks made (a replayed verdict makes none)."""
        if not verdicts:
            return []
        playbooks, _ = await self.playbooks.current(session)
        made = await repository.insert_new(
            session, start_tasks(playbooks, verdicts, now, self.policy), now
        )
        resolved = {
            decision.alert.id
            for verdict in verdicts
            for decision in verdict.decisions
            if decision.transition is engine.Transition.resolved
        }
        await repository.mark_cause_resolved(session, resolved, now)
        return made
