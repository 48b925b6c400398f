"""How fast ``GET /v1/tasks`` pages with 200,000 open tasks: fills ``alert_tasks`` of a
fresh PostgreSQL database and times ``tasks.repository.list_tasks`` for each filter,
first and next page (keyset), and the escalation claim.

    python -m bench.tasks_list --server postgresql+asyncpg://vitals@127.0.0.1:5433/
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.alerts.app import MIGRATIONS
from services.alerts.tasks import repository
from shared.db import create_engine, session_factory
from shared.migrations import upgrade_to_head

DATABASE = "vitals_bench_tasks"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
OWNERS = 60
ROUNDS = 20
PAGE = 100
# One task in ten is closed (done, with an outcome); the rest are open.
FILL = """
INSERT INTO alert_tasks (id, account_id, playbook, playbook_ref, playbook_set, step, trigger,
  episode, title, checklist, owner_role, owner, state, outcome, tier, due_at, escalate_at,
  created_at, updated_at, sequence, context)
SELECT md5(g::text)::uuid::text, 'acct-' || g,
  (ARRAY['churn_save_s', 'churn_save_a', 'sharp_drop_check_in', 'silent_paying_account'])
    [1 + g % 4],
  'x@1', 'default@1', 'call', 'alert_opened:x', 'alert:' || g, 'Call', '[]', 'account_owner',
  'csm' || (g % :owners) || '@vendor.example',
  CASE WHEN g % 10 = 0 THEN 'done' ELSE 'open' END,
  CASE WHEN g % 10 = 0 THEN (ARRAY['saved', 'lost', 'reached'])[1 + g % 3] END,
  (ARRAY['S', 'A', 'B', 'C'])[1 + g % 4],
  CAST(:t0 AS timestamptz) + (g % 720) * interval '1 hour',
  CAST(:t0 AS timestamptz) + (g % 720) * interval '1 hour' + interval '4 hours',
  CAST(:t0 AS timestamptz) + (g % 43200) * interval '1 minute', CAST(:t0 AS timestamptz),
  g, '{}'
FROM generate_series(1, :total) g
"""


def _filters(now: datetime) -> dict[str, repository.TaskFilter]:
    owner = "csm7@vendor.example"
    return {
        "none": repository.TaskFilter(),
        "owner, open": repository.TaskFilter(owner=owner, state="open"),
        "tier S, open": repository.TaskFilter(tier="S", state="open"),
        "overdue": repository.TaskFilter(overdue_at=now),
        "owner, overdue": repository.TaskFilter(owner=owner, overdue_at=now),
        "outcome saved, tier S": repository.TaskFilter(outcome="saved", tier="S"),
        "playbook": repository.TaskFilter(playbook="sharp_drop_check_in"),
        "due_before": repository.TaskFilter(due_before=T0 + timedelta(days=2)),
    }


async def _ms(
    session: AsyncSession, where: repository.TaskFilter, after: tuple[datetime, str] | None
) -> float:
    started = time.perf_counter()
    for _ in range(ROUNDS):
        await repository.list_tasks(session, where, after, PAGE + 1)
    return (time.perf_counter() - started) / ROUNDS * 1000


async def main(server: str, open_tasks: int) -> None:
    admin = create_async_engine(server + "postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        await connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    await admin.dispose()
    engine = create_engine(server + DATABASE)
    await upgrade_to_head(engine, MIGRATIONS)
    async with engine.begin() as connection:
        total = open_tasks * 10 // 9
        await connection.execute(text(FILL), {"t0": T0, "owners": OWNERS, "total": total})
        await connection.execute(text("ANALYZE alert_tasks"))
    now = T0 + timedelta(days=15)
    async with session_factory(engine)() as session:
        count = await session.scalar(text("SELECT count(*) FROM alert_tasks WHERE state = 'open'"))
        print(f"open tasks: {count}; a page is {PAGE} tasks; mean of {ROUNDS} reads")
        for name, where in _filters(now).items():
            rows = await repository.list_tasks(session, where, None, PAGE + 1)
            after = (rows[PAGE - 1].created_at, rows[PAGE - 1].id)
            first, following = await _ms(session, where, None), await _ms(session, where, after)
            print(f"{name:24s} first page {first:6.1f} ms   next page {following:6.1f} ms")
        started = time.perf_counter()
        await repository.due_escalations(session, now, 100)
        print(f"escalation claim of 100: {(time.perf_counter() - started) * 1000:.1f} ms")
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql+asyncpg://vitals@127.0.0.1:5433/")
    parser.add_argument("--open-tasks", type=int, default=200_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.server, arguments.open_tasks))
