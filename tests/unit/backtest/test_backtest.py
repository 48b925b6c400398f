"""``vitals backtest``: the daily file's shape, the report's numbers on a hand-checked
case, bad input counted, and a small generated portfolio end to end."""

from __future__ import annotations

import gc
import json
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bench import portfolio
from services.backtest import run
from services.backtest.ledger import Ledger, Trace
from services.backtest.replay import Replay
from services.backtest.report import Churn, summarise
from services.backtest.sources import Intake, Memory, merged, segment_events
from services.cli import app
from services.ingest.domain import Limits as IngestLimits
from services.scoring.domain import Limits
from services.scoring.scorecard import RevenueShare
from services.scoring.settings import SHIPPED_SCORECARDS
from shared.scores import Tier
from tests.support.events import native_usage_json

V1 = SHIPPED_SCORECARDS / "previous" / "default-v1.yaml"
DAILY_KEYS = [
    "account_id",
    "day",
    "health_score",
    "band",
    "risk",
    "risk_reasons",
    "value_score",
    "tier",
    "stage",
    "stale",
]
START = date(2026, 1, 1)


def _trace(
    health: list[int],
    risk: str,
    mrr_minor: int,
    tier: Tier | None = None,
    owner: str | None = None,
) -> Trace:
    codes = {"l": 0, "m": 1, "h": 2}
    trace = Trace(first=0, tier=tier, mrr_minor=mrr_minor, owner=owner)
    trace.health.extend(health)
    trace.risk.extend(codes[c] for c in risk)
    return trace


def test_the_report_on_a_hand_checked_portfolio() -> None:
    """Sixty days. ``early`` turns high on day 35 and cancels on day 59 (lead 24);
    ``warned`` turns high on day 5 and cancels on day 40 (lead 35); ``kept`` is high
    once, on day 40 (after its first 30 days); ``calm`` never is."""
    ledger = Ledger("m", start=START, last=START + timedelta(days=59))
    ledger.traces = {
        "early": _trace([80] * 30 + [30] * 30, "l" * 35 + "h" * 25, 100),
        "warned": _trace([20] * 60, "l" * 5 + "h" * 55, 300),
        "kept": _trace([90] * 60, "l" * 40 + "h" + "l" * 19, 600, tier=Tier.S),
        "calm": _trace([60] * 60, "l" * 60, 1000, owner="csm@x"),
    }
    outcomes = {
        "early": Churn(START + timedelta(days=59), "decline"),
        "warned": Churn(START + timedelta(days=40), "decline"),
    }
    notices = [(START, "csm@x", "churn_risk_raised"), (START, "csm@x", "tier_changed")]

    report = summarise(ledger, outcomes, notices, RevenueShare(s_until=0.5, c_from=0.95))

    declined = report["churned"]["decline"]
    assert declined["accounts"] == 2
    assert declined["flagged_high_30d_before"] == 0.5  # warned: 35 days ahead; early: 24
    assert declined["flagged_high_14d_before"] == 1.0
    assert declined["lead_days"]["p50"] == pytest.approx(29.5)
    assert declined["lead_histogram"]["14-29"] == 1 and declined["lead_histogram"]["30-59"] == 1
    # 30 days ahead: early (80, day 29) and warned (20, day 10) against kept 90 and calm 60
    # on those days: early beats calm, loses to kept (1 of 2); warned wins both (2 of 2).
    assert declined["health_auc_30d_before"] == 0.75
    assert report["retained"] == {
        "accounts": 2,
        "ever_high_after_first_30_days": 0.5,
        "ever_high": 0.5,
    }
    assert report["high_risk_account_days"]["count"] == 25 + 55 + 1
    assert report["alerts"]["csms"] == 2 and report["alerts"]["notices"] == 2
    # Revenue 2,000: by the truth calm (1,000) is S, kept (600) and warned (300) A or B,
    # early (100) the tail, C. Only kept has a tier, S: no account matches.
    assert report["tiers"]["S"] == {"accounts": 1, "revenue_share": 0.3}
    assert report["tiers"]["match_revenue_truth"]["share"] == 0.0


def test_a_small_generated_portfolio_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "portfolio"
    counts = portfolio.write(data, accounts=30, days=100, seed=2)
    outputs = run.Outputs(tmp_path / "daily.jsonl", tmp_path / "report.json", tmp_path / "c.png")

    result = run.backtest(
        run.Inputs(segment=[data / "segment.jsonl"], stripe=[data / "stripe.jsonl"]),
        run.load_models([V1, SHIPPED_SCORECARDS]),
        outputs,
        run.read_outcomes(data / "outcomes.csv"),
        progress=False,
    )

    assert result.intake.lines == counts["segment"] + counts["stripe"]
    assert set(result.intake.rejected) <= {"unknown_account"}  # identify before group
    assert [r["model"] for r in result.reports] == ["default@1", "default@2"]
    for model in ("default@1", "default@2"):
        lines = (tmp_path / f"daily.{model}.jsonl").read_bytes().splitlines()
        rows = [orjson.loads(line) for line in lines]
        assert rows and all(list(row) == DAILY_KEYS for row in rows)
        assert {row["day"] for row in rows} <= {
            (portfolio.START + timedelta(days=n)).isoformat() for n in range(100)
        }
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["input"]["events"] == result.intake.events
    assert saved["models"][1]["tiers"]["match_revenue_truth"]["share"] >= 0.9
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


def test_models_side_by_side_score_as_each_alone(tmp_path: Path) -> None:
    """Several models swap what ``rescore`` keeps in the states; a single one does not."""
    data = tmp_path / "portfolio"
    portfolio.write(data, accounts=8, days=60, seed=3)
    inputs = run.Inputs(segment=[data / "segment.jsonl"], stripe=[data / "stripe.jsonl"])

    def daily(models: list[Path], name: str) -> Path:
        out = tmp_path / name / "daily.jsonl"
        run.backtest(inputs, run.load_models(models), run.Outputs(out), progress=False)
        return out

    together = daily([V1, SHIPPED_SCORECARDS], "together")
    for model, alone in (("default@1", daily([V1], "v1")), ("default@2", daily([], "v2"))):
        side_by_side = together.with_name(f"daily.{model}.jsonl")
        assert alone.read_bytes()
        assert side_by_side.read_bytes() == alone.read_bytes()


def test_bad_lines_are_counted_by_reason_and_skipped(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    good = native_usage_json(account_id="acme")
    lines = [
        orjson.dumps(good),
        b"{not json",
        orjson.dumps({**good, "occurred_at": "yesterday"}),
        b"",
        orjson.dumps([1, 2]),
    ]
    events.write_bytes(b"\n".join(lines) + b"\n")

    result = run.backtest(
        run.Inputs(events=[events]), run.load_models([]), run.Outputs(), progress=False
    )

    assert (result.intake.lines, result.intake.events) == (4, 1)
    assert result.intake.rejected == {"malformed_json": 1, "invalid_event": 2}


def test_the_collector_thresholds_are_the_callers_again_after_a_replay(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(native_usage_json(account_id="acme")) + b"\n")
    before = gc.get_threshold()

    run.backtest(run.Inputs(events=[events]), run.load_models([]), run.Outputs(), progress=False)
    with pytest.raises(KeyboardInterrupt), run._collecting_rarely():
        assert gc.get_threshold() == run.GC_THRESHOLDS
        raise KeyboardInterrupt

    assert gc.get_threshold() == before


def test_the_command_prints_the_report_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(native_usage_json(account_id="acme")) + b"\n")
    runner = CliRunner()

    shown = runner.invoke(app, ["backtest", "--events", str(events), "--no-progress"])
    missing = runner.invoke(app, ["backtest", "--events", str(tmp_path / "none.jsonl")])
    nothing = runner.invoke(app, ["backtest"])

    assert shown.exit_code == 0, shown.output
    assert "default@2" in shown.output and "1 events" in shown.output
    assert missing.exit_code == 2 and "no such input file" in missing.output
    assert nothing.exit_code == 2 and "no input given" in nothing.output


def test_the_replay_hands_over_each_material_change_in_sequence(tmp_path: Path) -> None:
    """What `make demo` stores: every account's changes, in order, ending where its
    state ends."""
    data = tmp_path / "portfolio"
    portfolio.write(data, accounts=8, days=60, seed=4)
    changes: dict[str, list[int]] = {}
    replay = Replay(
        run.load_models([]),
        Limits(),
        run.production_judge([]),
        lambda *_: None,
        lambda _, change: changes.setdefault(change.account_id, []).append(change.sequence),
    )
    intake, memory = Intake(), Memory()
    limits = IngestLimits()
    streams = [segment_events(data / "segment.jsonl", intake, limits, memory)]
    for event in merged(streams):
        replay.add(event)
    replay.finish()

    assert changes and set(changes) <= set(replay.states)
    for account, sequences in changes.items():
        assert sequences == list(range(1, len(sequences) + 1))
        assert replay.states[account].sequence == sequences[-1]
