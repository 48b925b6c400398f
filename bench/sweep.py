"""The sweep at portfolio size: one scoring process re-scores N accounts at the current
time, and how much memory it takes.

Real account states come from scoring a small workload (500 accounts); they are then cloned in SQL
(new account ids, same partitions) up to N accounts, and a fresh scoring process on
the same database sweeps them all on start. The sweep's rate is read from the
process's sweep counter: accounts re-scored between its first and last move. A sweep that
would take longer than ``cap_s`` is measured over its first ``cap_s`` and its time
for all N projected from that rate (the result says which).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import measure
from bench.measure import say
from bench.workload import Workload, encode

PARTITIONS = 6
SEED = Workload(accounts=500, events=5_000)

# A state's JSON text starts with its account id (pydantic writes fields in order), so
# a copy swaps that prefix as text: parsing a million states with jsonb_set took
# minutes. PREFIX_CHECK makes sure the seed states start that way.
PREFIX = """'{"account_id":' || to_json(a.account_id)::text"""
CLONE = text(
    f"""
    INSERT INTO accounts (account_id, state, health_score, band, sequence, updated_at,
        partition, tier, risk, stage, owner, segment, mrr_minor, score_change, value_score,
        stale, scored_at, search_name, renewal_day, change_30d)
    SELECT a.account_id || '-c' || n,
        ('{{"account_id":' || to_json(a.account_id || '-c' || n)::text
            || substr(a.state::text, length({PREFIX}) + 1))::json,
        a.health_score, a.band, a.sequence, a.updated_at, a.partition, a.tier, a.risk,
        a.stage, a.owner, a.segment, a.mrr_minor, a.score_change, a.value_score, a.stale,
        a.scored_at, a.search_name || '-c' || n, a.renewal_day, a.change_30d
    FROM accounts a CROSS JOIN generate_series(1, :copies) AS n
    """
)
PREFIX_CHECK = text(
    f"SELECT count(*) FROM accounts a WHERE NOT starts_with(a.state::text, {PREFIX})"
)
SWEPT = "vitals_scoring_sweep_accounts_total"


@asynccontextmanager
async def seeded_scoring(
    bootstrap: str, postgres: str, accounts: int, log: Path, name: str
) -> AsyncIterator[tuple[measure.ScoringUnderTest, int]]:
    """A scoring database with ``accounts`` accounts (the seed's, scored, then cloned),
    and its scoring process, stopped: (it, the accounts in the database)."""
    topic = f"bench.{uuid.uuid4().hex[:8]}.{name}"
    await measure.create_topic(bootstrap, topic, PARTITIONS)
    records = [encode(event) for event in SEED.stream()]
    await measure.load_topic(bootstrap, topic, records)
    async with measure.scoring_under_test(bootstrap, postgres, topic, log) as scoring:
        await scoring.start()
        await measure.until_durable(scoring, len(records), 600)
        assert scoring.process is not None
        await measure.stop_process(scoring.process)
        yield scoring, await clone(scoring.engine, accounts)


async def sweep(
    bootstrap: str, postgres: str, accounts: int, log: Path, cap_s: float = 300
) -> dict[str, Any]:
    async with seeded_scoring(bootstrap, postgres, accounts, log, "sweep") as (scoring, seeded):
        say(f"sweep: {seeded:,} accounts in the database; starting a fresh scoring process")
        await scoring.start()
        swept, seconds = await _wait_swept(scoring, seeded, cap_s)
        assert scoring.process is not None
        peak_rss_mb, _ = measure.process_stats(scoring.process.pid)
    rate = swept / seconds if seconds else 0.0
    return {
        "accounts": seeded,
        "swept": swept,
        "complete": swept >= seeded,
        "sweep_s": seconds if swept >= seeded else seeded / rate if rate else None,
        "accounts_per_s": rate,
        "peak_rss_mb": peak_rss_mb,
    }


async def clone(engine: AsyncEngine, accounts: int) -> int:
    async with engine.begin() as connection:
        have = int(await connection.scalar(text("SELECT count(*) FROM accounts")) or 0)
        if await connection.scalar(PREFIX_CHECK):
            raise RuntimeError("a seed state does not start with its account id")
        copies = max(0, -(-accounts // have) - 1) if have else 0
        if copies:
            await connection.execute(CLONE, {"copies": copies})
        # Statistics as autovacuum would gather them on a table that grew gradually:
        # without them the planner sorts every row for each chunk of the sweep.
        await connection.execute(text("ANALYZE accounts"))
        return int(await connection.scalar(text("SELECT count(*) FROM accounts")) or 0)


async def _wait_swept(
    scoring: measure.ScoringUnderTest, accounts: int, cap_s: float
) -> tuple[int, float]:
    """(accounts re-scored, seconds between the first and the last observed move of the
    process's sweep counter) once all are, or after ``cap_s``. The counter, not the
    database: a count over a million rows every poll would compete with the sweep."""
    first: tuple[float, float] | None = None
    last = (time.perf_counter(), 0.0)
    deadline = time.perf_counter() + cap_s + 300  # start-up and the first chunk
    reported = 0.0
    while True:
        now, swept = time.perf_counter(), await scoring.metric(SWEPT)
        if swept is not None and swept > last[1]:
            first = first or last
            last = (now, swept)
        measured = last[0] - first[0] if first else 0.0
        if first and (last[1] >= accounts or measured >= cap_s):
            return int(last[1] - first[1]), measured
        if now > deadline:
            raise RuntimeError(f"the sweep re-scored nothing in {cap_s + 300:.0f} s")
        if now - reported > 10:
            say(f"sweep: {int(last[1]):,} / {accounts:,} accounts re-scored")
            reported = now
        await asyncio.sleep(1.0)
