"""The report in the terminal: one column per model."""

from __future__ import annotations

from rich.table import Table

from services.backtest.rows import report_rows
from services.backtest.run import Result


def table(result: Result) -> Table:
    reports = result.reports
    grid = Table(title="Backtest", show_lines=False)
    grid.add_column("")
    for report in reports:
        grid.add_column(report["model"], justify="right")
    for label, cells in report_rows(reports):
        grid.add_row(label, *cells)
    return grid
