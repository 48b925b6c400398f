"""A demo portfolio with history, for the console: `make demo` on a running `make run`.

The labelled generator's portfolio, from its first day to yesterday, replayed through
the backtest's replay (the services' own mapping, fold and scoring, at the end of
every day). Its account states and every material change are then written to the
scoring database as the consumer writes them; the changes are its outbox, so the
running scoring service publishes them and the alerts service raises their alerts.
The portfolio as it was 30 days ago is kept as that day's first sweep would have
kept it, so the console shows how it moved.

Beside the generator's accounts, two stories of the generator's own kind are added to
csm1's book, so that its attention list always shows what a CSM must not miss: an S
account (monthly, so renewing within a month) whose usage fell to about half its
baseline in the last 12 days (medium risk), and an A account (7 seats) whose usage fell
harder 16 days ago (down 25 points or more in 30 days).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
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
STORY_OWNER = "csm1@vitals.example"
# Ids the generator gives csm1 (acct-N, N % 12 == 1), far past any portfolio's own.
STRATEGIC_STORY = "acct-90001"
DROP_STORY = "acct-90013"


def story_accounts(today: date) -> list[portfolio.Account]:
    """csm1's two stories, as the generator's accounts (see the module's docstring)."""
    rng = random.Random(90_001)
    stories = [
        _story(STRATEGIC_STORY, seats=150, utilisation=0.8, fell_on=today - timedelta(12), to=0.55),
        _story(DROP_STORY, seats=7, utilisation=0.85, fell_on=today - timedelta(16), to=0.45),
    ]
    for account in stories:
        account.users = portfolio._users(rng, account, portfolio.START)
    return stories


def _story(
    account_id: str, *, seats: int, utilisation: float, fell_on: date, to: float
) -> portfolio.Account:
    """A monthly, billed customer since long before the portfolio's start, kept, whose
    usage falls to ``to`` of its own from ``fell_on`` on."""
    return portfolio.Account(
        account_id=account_id,
        started_on=portfolio.START - timedelta(days=400),
        seats=seats,
        utilisation=utilisation,
        annual=False,
        billed=True,
        fate="retained",
        dip=(fell_on, fell_on + timedelta(days=60), to),
    )


def write_stories(out: Path, days: int, today: date) -> None:
    """The stories' Segment calls and Stripe events, by time, beside the portfolio's."""
    stories = story_accounts(today)
    rng = random.Random(90_013)
    with (
        (out / "story-segment.jsonl").open("wb") as segment,
        (out / "story-stripe.jsonl").open("wb") as stripe,
    ):
        files = {"segment": segment, "stripe": stripe}
        for offset in range(days):
            day = portfolio.START + timedelta(offset)
            calls = sorted(
                (c for a in stories for c in portfolio.day_calls(rng, a, day)),
                key=lambda call: call[0],
            )
            for _, name, body in calls:
                files[name].write(orjson.dumps(body) + b"\n")


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
    days = (today - portfolio.START).days
    portfolio.write(out, accounts, days, seed)
    write_stories(out, days, today)
    ingest, scoring = IngestSettings(), ScoringSettings()
    history = History(kept_on=today - MOVEMENT)
    rules = load_rules(DEFAULT_RULES_FILE).enabled
    judge = production_judge(rules)
    replay = Replay(load_models([]), scoring.limits(), judge, history.on_score, history.on_change)
    intake, memory, limits = Intake(), Memory(), ingest.limits()
    stripe_accounts = ingest.stripe_accounts()
    streams = [
        stream
        for prefix in ("", "story-")
        for stream in (
            segment_events(out / f"{prefix}segment.jsonl", intake, limits, memory),
            stripe_events(out / f"{prefix}stripe.jsonl", intake, limits, memory, stripe_accounts),
        )
    ]
    for event in merged(streams):
        replay.add(event)
    replay.finish()
    return replay, history


async def store(replay: Replay, history: History, settings: ScoringSettings | None = None) -> None:
    """The states, changes and the kept day, written as scoring writes them (to the
    database and partitions of ``settings``, else the environment's); refused over a
    database that already has these accounts."""
    settings = settings or ScoringSettings()
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
