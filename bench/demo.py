"""A demo portfolio with history, for the console: `make demo` on a running `make run`.

The labelled generator's portfolio, from its first day to yesterday, replayed through
the backtest's replay (the services' own mapping, fold and scoring, at the end of
every day). Its account states and every material change are then written to the
scoring database as the consumer writes them; the changes are its outbox, so the
running scoring service publishes them and the alerts service raises their alerts.
The portfolio as it was 30 days ago is kept as that day's first sweep would have
kept it, so the console shows how it moved.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import func, select

from bench import portfolio
from services.alerts.rules.ruleset import DEFAULT_RULES_FILE, load_rules
from services.backtest.replay import Replay
from services.backtest.run import load_models, production_judge
from services.backtest.sources import Intake, Memory, merged, segment_events, stripe_events
from services.ingest.settings import IngestSettings
from services.scoring import repository
from services.scoring.api import MOVEMENT
from services.scoring.domain import AccountState, Assessment
from services.scoring.models import Account
from services.scoring.service import StateWrite
from services.scoring.settings import ScoringSettings
from shared.db import create_engine, session_factory
from shared.scores import ScoreChange

CHUNK = 500


@dataclass
class History:
    """What the replay hands over: every material change, and the portfolio on
    ``kept_on`` by (owner, segment) and (tier, band, risk): [accounts, MRR]."""

    kept_on: date
    changes: list[ScoreChange] = field(default_factory=list)
    kept: dict[tuple[str, str], dict[tuple[str, str, str], list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def on_change(self, _: int, change: ScoreChange) -> None:
        self.changes.append(change)

    def on_score(
        self, _: int, account: str, day: date, now: Assessment | None, state: AccountState
    ) -> None:
        if day != self.kept_on:
            return
        combination = ("", "", "")  # not scored yet: the columns the account row leaves empty
        if now is not None:
            tier = now.effective_tier.value if now.effective_tier else ""
            combination = (tier, now.effective_band.value, now.risk.value)
        scope = (state.trait("owner_csm_email") or "", state.trait("segment") or "")
        sums = self.kept[scope].setdefault(combination, [0, 0])
        sums[0] += 1
        sums[1] += state.mrr_minor or 0

    def kept_figures(self) -> repository.KeptFigures:
        return {
            scope: [[*combination, n, mrr] for combination, (n, mrr) in figures.items()]
            for scope, figures in self.kept.items()
        }


def replayed(accounts: int, seed: int, out: Path) -> tuple[Replay, History]:
    """The portfolio up to yesterday, replayed under the shipped scorecards."""
    today = datetime.now(UTC).date()
    portfolio.write(out, accounts, (today - portfolio.START).days, seed)
    ingest, scoring = IngestSettings(), ScoringSettings()
    history = History(kept_on=today - MOVEMENT)
    rules = load_rules(DEFAULT_RULES_FILE).enabled
    judge = production_judge(rules)
    replay = Replay(load_models([]), scoring.limits(), judge, history.on_score, history.on_change)
    intake, memory, limits = Intake(), Memory(), ingest.limits()
    streams = [
        segment_events(out / "segment.jsonl", intake, limits, memory),
        stripe_events(out / "stripe.jsonl", intake, limits, memory, ingest.stripe_accounts()),
    ]
    for event in merged(streams):
        replay.add(event)
    replay.finish()
    return replay, history


async def store(replay: Replay, history: History) -> None:
    """The states, changes and the kept day, written as scoring writes them; refused
    over a database that already has these accounts."""
    settings = ScoringSettings()
    partitions = list(range(settings.topic_partitions))
    partitioner = DefaultPartitioner()
    engine = create_engine(settings.scoring_database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            ids = sorted(replay.states)[:CHUNK]
            if await session.scalar(select(func.count()).where(Account.account_id.in_(ids))):
                raise SystemExit("the demo accounts are there already ('make clean' removes them)")
            writes = [
                StateWrite(
                    state,
                    state.current,
                    state.trend_7d,
                    partitioner(state.account_id.encode(), partitions, partitions),
                )
                for state in replay.states.values()
            ]
            now = datetime.now(UTC)
            for start in range(0, len(writes), CHUNK):
                await repository.save_states(session, writes[start : start + CHUNK], now)
            for start in range(0, len(history.changes), CHUNK):
                await repository.add_history(session, history.changes[start : start + CHUNK])
            await repository.keep_portfolio_day(session, history.kept_on, history.kept_figures())
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        replay, history = replayed(args.accounts, args.seed, Path(folder))
    asyncio.run(store(replay, history))
    print(
        f"demo: {len(replay.states)} accounts, {len(history.changes):,} score changes from "
        f"{portfolio.START} to yesterday, and the portfolio of {history.kept_on}, written "
        "to the scoring database"
    )


if __name__ == "__main__":
    main()
