"""Where a backtest on the simulated portfolio wins and loses, by the accounts' stories.

Reads ``make backtest``'s daily files and the generator's labels (``accounts.csv``):
declines flagged high 30 days ahead by the decline's length, and retained accounts
ever flagged high after their first 30 days by what happened to them.

``python -m bench.backtest_breakdown var/backtest``
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import orjson

from services.backtest.report import SETTLING_DAYS

STORIES = ("dip", "failed_payment", "expansion")


def high_days(daily: Path) -> tuple[dict[str, list[date]], dict[str, date]]:
    """Each account's high-risk days, and its first scored day."""
    highs: dict[str, list[date]] = defaultdict(list)
    first: dict[str, date] = {}
    with daily.open("rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            day = date.fromisoformat(row["day"])
            first.setdefault(row["account_id"], day)
            if row["risk"] == "high":
                highs[row["account_id"]].append(day)
    return highs, first


def breakdown(folder: Path, daily: Path) -> None:
    accounts = {r["account_id"]: r for r in csv.DictReader((folder / "accounts.csv").open())}
    churned = {
        r["account_id"]: date.fromisoformat(r["churned_on"])
        for r in csv.DictReader((folder / "outcomes.csv").open())
    }
    highs, first = high_days(daily)
    start = min(first.values())
    by_length: dict[str, list[bool]] = defaultdict(list)
    for account, day in churned.items():
        label = accounts[account]
        if label["fate"] != "decline" or day < start + timedelta(SETTLING_DAYS):
            continue
        length = int(label["decline_days"])
        bucket = f"{length // 15 * 15}-{length // 15 * 15 + 14} days"
        by_length[bucket].append(any(d <= day - timedelta(30) for d in highs.get(account, [])))
    print(f"{daily.name}: declines flagged high >= 30 days before cancelling, by length")
    for bucket in sorted(by_length, key=lambda b: int(b.split("-")[0])):
        hits = by_length[bucket]
        print(f"  {bucket:>12}: {sum(hits):>3} of {len(hits):>3} ({sum(hits) / len(hits):.0%})")
    retained = [a for a in first if a not in churned]
    print("  retained accounts ever high after their first 30 days, by story:")
    for story in (*STORIES, "none of these"):
        members = [a for a in retained if _story(accounts[a], story)]
        flagged = [
            a
            for a in members
            if any(d >= first[a] + timedelta(SETTLING_DAYS) for d in highs.get(a, []))
        ]
        share = len(flagged) / len(members) if members else 0.0
        print(f"  {story:>14}: {len(flagged):>3} of {len(members):>3} ({share:.0%})")


def _flagged_after_settling(highs: list[date], first: date) -> bool:
    return any(d >= first + timedelta(SETTLING_DAYS) for d in highs)


def _story(label: dict[str, str], story: str) -> bool:
    if story == "none of these":
        return not any(label[s] == "True" for s in STORIES)
    return label[story] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("var/backtest"))
    args = parser.parse_args()
    for daily in sorted(args.folder.glob("daily*.jsonl")):
        breakdown(args.folder, daily)


if __name__ == "__main__":
    main()
