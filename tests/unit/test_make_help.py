"""`make help`: every target's description starts in one column, whatever the length
of the target's name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_descriptions_line_up_after_the_longest_name() -> None:
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    lines = [ANSI.sub("", line) for line in shown.splitlines() if line.strip()]
    rows = [re.fullmatch(r"  (\S+)( +)(\S.*)", line) for line in lines]

    assert all(rows), lines
    names = [row[1] for row in rows if row]
    assert {"check-deploy", "check-image", "console-assets", "run"} <= set(names)
    starts = {len(row[1]) + len(row[2]) for row in rows if row}
    assert starts == {max(map(len, names)) + 2}, lines
