"""The Backtest page's report: read from the file `vitals backtest --report` wrote, or a
sentence saying what to run when there is none to read."""

from pathlib import Path

import orjson

from services.console.backtest import read_report

REPORT = {
    "input": {"lines": 10, "events": 9, "rejected": {"malformed_json": 1}},
    "models": [
        {
            "model": "default@2",
            "accounts": 3,
            "churned": {"all": {"accounts": 1, "flagged_high_30d_before": 1.0}},
            "tiers": {"S": {"accounts": 1, "revenue_share": 0.75}},
        }
    ],
}


def test_a_report_is_read_into_one_column_per_model(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(orjson.dumps(REPORT))

    report = read_report(path)

    assert report.problem is None and report.models == ["default@2"]
    rows = dict(report.rows)
    assert rows["  flagged high >= 30 days before"] == ["1.00"]
    assert rows["tiers S / A / B / C / none"] == ["1 / 0 / 0 / 0 / 0"]
    assert report.input["events"] == 9 and report.written_at is not None


def test_no_report_a_missing_one_or_another_file_says_what_to_run(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_bytes(b'{"models": {"default@2": 1}}')
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"models": [')

    problems = [
        read_report(path).problem
        for path in (None, tmp_path / "absent.json", other, broken, tmp_path)
    ]

    assert problems[0] is not None and problems[0].startswith("No backtest report is set up")
    assert problems[1] is not None and "There is no report at" in problems[1]
    assert all(p is not None and "make backtest" in p for p in problems[:4])
    assert problems[2] is not None and "is not a report of" in problems[2]
    assert problems[3] is not None and "is not a report of" in problems[3]
    assert problems[4] is not None and "cannot be read" in problems[4]
