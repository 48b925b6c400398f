"""The Backtest page's data: a report written by ``vitals backtest``, read from its file.

A report that is not there or cannot be read is a sentence for the page, never an error:
the page says what to run to make one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.backtest.rows import report_rows

HOW = (
    "Run `make backtest`, or `vitals backtest ... --report FILE --chart FILE.png`, and "
    "point VITALS_CONSOLE_BACKTEST_REPORT (and _CHART) at those files."
)


@dataclass(frozen=True)
class BacktestReport:
    models: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    input: dict[str, object] = field(default_factory=dict)  # the report's, as written
    written_at: datetime | None = None
    problem: str | None = None


def read_report(path: Path | None) -> BacktestReport:
    if path is None:
        return BacktestReport(problem=f"No backtest report is set up. {HOW}")
    try:
        raw = path.read_bytes()
        written_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return BacktestReport(problem=f"There is no report at {path} yet. {HOW}")
    except OSError as exc:
        return BacktestReport(problem=f"The report at {path} cannot be read: {exc.strerror}.")
    try:
        document = orjson.loads(raw)
        models = document["models"]
        names = [str(m["model"]) for m in models]
        rows = report_rows(models)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return BacktestReport(
            problem=f"{path} is not a report of `vitals backtest --report`. {HOW}"
        )
    return BacktestReport(names, rows, document.get("input") or {}, written_at)
