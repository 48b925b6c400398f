"""``vitals backtest``: wire the inputs, the replay, the ledgers and the outputs.

Each model is a scorecard file (or folder) as scoring loads it; the settings are
the services' own (``VITALS_*``), so the replay maps and scores as production does.
"""

from __future__ import annotations

import csv
import gc
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, TypeVar

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from services.alerts.playbooks.model import DEFAULT_PLAYBOOKS_FILE, load_playbooks
from services.alerts.rules.engine import Silence
from services.alerts.rules.kinds import Rule
from services.alerts.rules.ruleset import DEFAULT_RULES_FILE, load_rules
from services.alerts.service import Judge
from services.alerts.settings import AlertsSettings
from services.alerts.tasks.service import TaskPolicy
from services.backtest.kafka_source import topic_events
from services.backtest.ledger import Ledger
from services.backtest.replay import CsmOverride, Model, OnChange, Playbooks, Replay
from services.backtest.report import Churn, Report, summarise
from services.backtest.sources import (
    Intake,
    Memory,
    Timed,
    merged,
    native_events,
    segment_events,
    stripe_events,
)
from services.ingest.settings import IngestSettings
from services.scoring.domain import AccountState, Assessment
from services.scoring.scorecard import RevenueShare, load_scorecards
from services.scoring.settings import SHIPPED_SCORECARDS, ScoringSettings

PROGRESS_EVERY = 20_000
GC_THRESHOLDS = (100_000, 50, 1_000)  # allocations before a young collection; older ones

T = TypeVar("T")


class BacktestError(ValueError):
    """Input the backtest cannot start with; the message says which and why."""


@dataclass(frozen=True)
class TopicRange:
    """Normalised events on a Kafka topic, from ``since`` until before ``until``."""

    topic: str
    since: datetime
    until: datetime


@dataclass
class Inputs:
    events: list[Path] = field(default_factory=list)
    segment: list[Path] = field(default_factory=list)
    stripe: list[Path] = field(default_factory=list)
    kafka: TopicRange | None = None

    def all(self) -> list[Path]:
        return [*self.events, *self.segment, *self.stripe]


@dataclass
class Actions:
    """What CSMs did over the history (``services.backtest.actions`` reads them): band
    and tier overrides, set and perhaps lifted, and alert silences."""

    overrides: list[CsmOverride] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)


@dataclass
class Outputs:
    daily: Path | None = None
    report: Path | None = None
    chart: Path | None = None


@dataclass
class Result:
    reports: list[Report]
    intake: Intake
    seconds: float
    daily_files: list[Path]
    notices: list[list[tuple[date, str, str]]] = field(default_factory=list)
    """Per model, the alert notices sent: (day, owner CSM, rule)."""

    @property
    def events_per_minute(self) -> float:
        return self.intake.events / self.seconds * 60 if self.seconds else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "input": {
                "lines": self.intake.lines,
                "events": self.intake.events,
                "rejected": dict(sorted(self.intake.rejected.items())),
                "seconds": round(self.seconds, 1),
                "events_per_minute": round(self.events_per_minute),
            },
            "daily_files": [str(p) for p in self.daily_files],
            "models": self.reports,
        }


def load_models(paths: list[Path]) -> list[Model]:
    """One model per scorecard file or folder; the shipped scorecards when none is given."""
    models = []
    for path in paths or [SHIPPED_SCORECARDS]:
        scorecards = load_scorecards(path)
        models.append(Model(scorecards.default.ref, scorecards))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise BacktestError(f"two models with the same scorecard id@version: {names}")
    return models


def read_outcomes(path: Path) -> dict[str, Churn]:
    """``account_id,churned_on[,kind]`` with a header line."""
    found: dict[str, Churn] = {}
    with path.open(newline="", encoding="utf-8") as file:
        for number, row in enumerate(csv.DictReader(file), start=2):
            try:
                churned_on = date.fromisoformat(row["churned_on"])
                found[row["account_id"]] = Churn(churned_on, row.get("kind") or None)
            except (KeyError, TypeError, ValueError):
                raise BacktestError(
                    f"{path}:{number}: expected account_id,churned_on (YYYY-MM-DD)[,kind]"
                ) from None
    return found


@contextmanager
def _collecting_rarely() -> Iterator[None]:
    """The replay's states live to its end and make little garbage: with the default
    thresholds the cyclic collector scanned them some 7,000 times, 13% of a replay."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def production_judge(rules: list[Rule]) -> Judge:
    """``rules`` judged with the alerts service's own settings (its health threshold)."""
    return Judge(rules, AlertsSettings().alerts_health_threshold)


def backtest(
    inputs: Inputs,
    models: list[Model],
    outputs: Outputs,
    outcomes: dict[str, Churn] | None = None,
    rules_file: Path = DEFAULT_RULES_FILE,
    truth: RevenueShare | None = None,
    progress: bool = True,
    actions: Actions | None = None,
    on_change: OnChange | None = None,
    playbooks_file: Path = DEFAULT_PLAYBOOKS_FILE,
) -> Result:
    """Replay ``inputs`` under each model, with the CSMs' ``actions``; ``on_change`` is
    called with each model's index and every material score change it made. The
    playbooks of ``playbooks_file`` run on every verdict, as in the alerts service."""
    missing = [str(p) for p in inputs.all() if not p.is_file()]
    if missing or not (inputs.all() or inputs.kafka):
        raise BacktestError(f"no such input file: {missing}" if missing else "no input given")
    rules = load_rules(rules_file).enabled
    ingest, scoring = IngestSettings(), ScoringSettings()
    judge = production_judge(rules)
    playbooks = Playbooks(
        load_playbooks(playbooks_file), TaskPolicy.from_settings(AlertsSettings())
    )
    intake = Intake()
    with ExitStack() as files:
        daily = _daily_files(outputs.daily, models)
        outs: list[IO[bytes] | None] = [files.enter_context(p.open("wb")) for p in daily]
        outs = outs or [None] * len(models)
        ledgers = [Ledger(m.name, daily=out) for m, out in zip(models, outs, strict=True)]

        def on_score(
            index: int, account: str, day: date, assessment: Assessment | None, state: AccountState
        ) -> None:
            ledgers[index].record(account, day, assessment, state)

        given = actions or Actions()
        replay = Replay(
            models,
            scoring.limits(),
            judge,
            on_score,
            on_change,
            overrides=given.overrides,
            silences=given.silences,
            playbooks=playbooks,
        )
        memory = Memory(wait=timedelta(seconds=ingest.ingest_segment_wait_s))
        streams = _streams(inputs, intake, ingest, memory, files)
        started = time.perf_counter()
        with _collecting_rarely():
            for event in _with_progress(merged(streams), intake, inputs, progress):
                replay.add(event)
            replay.finish()
        seconds = time.perf_counter() - started
    if never := memory.never_grouped():
        intake.rejected["unknown_account"] += never
    if refused := len(replay.refused):
        intake.rejected["override_unknown_account"] += refused
    if late := replay.overrides_never_set():
        intake.rejected["override_after_last_day"] += late
    known = outcomes if outcomes is not None else _cancellations(replay)
    reports = [
        summarise(ledger, known, alerts.notices, truth or RevenueShare(), alerts.tasks)
        for ledger, alerts in zip(ledgers, replay.alerts, strict=True)
    ]
    notices = [alerts.notices for alerts in replay.alerts]
    result = Result(reports, intake, seconds, daily, notices)
    _write_outputs(result, outputs)
    return result


def _streams(
    inputs: Inputs, intake: Intake, ingest: IngestSettings, memory: Memory, closing: ExitStack
) -> list[Iterator[Timed]]:
    limits = ingest.limits()
    accounts = ingest.stripe_accounts()
    topic: list[Iterator[Timed]] = []
    if (found := inputs.kafka) is not None:
        reading = topic_events(ingest, found.topic, found.since, found.until, intake)
        topic = closing.enter_context(reading)
    return [
        *topic,
        *(native_events(p, intake, limits) for p in inputs.events),
        *(segment_events(p, intake, limits, memory) for p in inputs.segment),
        *(stripe_events(p, intake, limits, memory, accounts) for p in inputs.stripe),
    ]


def _cancellations(replay: Replay) -> dict[str, Churn]:
    """Outcomes from the billing events: the day each subscription was cancelled."""
    return {account: Churn(day) for account, day in replay.cancelled_on.items()}


def _daily_files(path: Path | None, models: list[Model]) -> list[Path]:
    """The daily file; with several models, one per model, named after it."""
    if path is None:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(models) == 1:
        return [path]
    return [path.with_name(f"{path.stem}.{m.name}{path.suffix}") for m in models]


def _with_progress(events: Iterator[T], intake: Intake, inputs: Inputs, shown: bool) -> Iterator[T]:
    if not shown:
        yield from events
        return
    total = sum(p.stat().st_size for p in inputs.all()) if not inputs.kafka else None
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[events]:,} events"),
        TimeRemainingColumn(),
    )
    # Drawn when it moves, not ten times a second from a thread that takes the GIL.
    with Progress(*columns, transient=True, auto_refresh=False) as bar:
        task = bar.add_task("replay", total=total, events=0)
        for count, event in enumerate(events, start=1):
            if count % PROGRESS_EVERY == 0:
                bar.update(task, completed=intake.bytes_read, events=intake.events, refresh=True)
            yield event


def _write_outputs(result: Result, outputs: Outputs) -> None:
    if outputs.report is not None:
        outputs.report.parent.mkdir(parents=True, exist_ok=True)
        outputs.report.write_bytes(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2))
    if outputs.chart is not None:
        try:
            from services.backtest.chart import draw

            draw(result.reports, outputs.chart)
        except ModuleNotFoundError as exc:
            wanted = "a chart needs matplotlib: pip install 'vitals[backtest]'"
            raise BacktestError(f"{wanted} ({exc}); the report was written") from None
