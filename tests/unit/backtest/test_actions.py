"""``vitals backtest --overrides/--silences``: CSMs' overrides change an account's days
while they are in force, silences mute their rule in their window only, and files
that cannot be used are refused naming the file, the entry and the field."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from services.backtest import run
from services.backtest.actions import load_actions
from services.cli import app
from shared.scores import ScoreChange, Trigger
from tests.support.alerts_messages import TEST_RULES
from tests.support.scoring_builders import V1_SCORECARD

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
DAY0 = START.date()


def _day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def _at(n: int, hour: int) -> str:
    return (START.replace(hour=hour) + timedelta(days=n)).isoformat()


def _history(path: Path, *, quiet_from: dict[str, int] | None = None, days: int = 20) -> Path:
    """Native events: each account pays and is used by two users every day (from its
    ``quiet_from`` day on, no longer); owners are ``<account>@vendor.example``."""
    quiet_from = quiet_from or {}
    lines: list[dict[str, Any]] = []
    for account in ("acme", "globex", "initech"):
        lines += [
            {
                "account_id": account,
                "kind": "billing",
                "name": "subscription.updated",
                "occurred_at": START.isoformat(),
                "event_id": f"{account}-billing",
                "billing": {
                    "subscription_status": "active",
                    "seats": 2,
                    "mrr_minor": 100_000,
                    "currency": "EUR",
                },
            },
            {
                "account_id": account,
                "kind": "account",
                "name": "account.updated",
                "occurred_at": START.isoformat(),
                "event_id": f"{account}-traits",
                "traits": {"owner_csm_email": f"{account}@vendor.example"},
            },
        ]
        for n in range(min(days, quiet_from.get(account, days))):
            lines += [
                {
                    "account_id": account,
                    "kind": "usage",
                    "name": "report.exported",
                    "occurred_at": (START + timedelta(days=n, hours=1)).isoformat(),
                    "user_id": user,
                    "event_id": f"{account}-{n}-{user}",
                }
                for user in ("u1", "u2")
            ]
    lines.sort(key=lambda line: str(line["occurred_at"]))
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def _write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _replay(
    tmp_path: Path, events: Path, actions: run.Actions | None, name: str
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[ScoreChange], run.Result]:
    """The daily rows by (account, day), the score changes and the result, under
    version 1 of the default scorecard and the alert rules written for it."""
    daily = tmp_path / name / "daily.jsonl"
    changes: list[ScoreChange] = []
    result = run.backtest(
        run.Inputs(events=[events]),
        run.load_models([V1_SCORECARD]),
        run.Outputs(daily),
        rules_file=TEST_RULES,
        progress=False,
        actions=actions,
        on_change=lambda _, change: changes.append(change),
    )
    rows = [orjson.loads(line) for line in daily.read_bytes().splitlines()]
    return {(r["account_id"], r["day"]): r for r in rows}, changes, result


def test_an_override_changes_its_accounts_days_from_when_it_is_set_until_it_ends(
    tmp_path: Path,
) -> None:
    """acme red from day 3, 15:00 until it expires on day 8, 12:00: red from day 3's
    close through day 7's. globex C from day 2 until lifted on day 6, 10:00."""
    events = _history(tmp_path / "events.jsonl")
    overrides = _write(
        tmp_path / "overrides.yaml",
        {
            "overrides": [
                {
                    "account_id": "acme",
                    "field": "band",
                    "value": "red",
                    "set_at": _at(3, 15),
                    "expires_at": _at(8, 12),
                },
                {
                    "account_id": "globex",
                    "field": "tier",
                    "value": "C",
                    "reason": "reseller account",
                    "created_by": "kim@example.com",
                    "set_at": _at(2, 8),
                    "expires_at": _at(40, 0),
                    "lifted_at": _at(6, 10),
                },
            ]
        },
    )

    plain, plain_changes, _ = _replay(tmp_path, events, None, "plain")
    rows, changes, result = _replay(tmp_path, events, load_actions([overrides]), "overridden")

    red = {_day(n).isoformat() for n in range(3, 8)}
    tier_c = {_day(n).isoformat() for n in range(2, 6)}
    assert plain and set(rows) == set(plain)
    for (account, day), row in rows.items():
        expected = dict(plain[account, day])
        if account == "acme" and day in red:
            expected["band"] = "red"
            expected["risk"] = "high"  # the scorecard's "health band is red"
            expected["risk_reasons"] = ["health band is red"]
        if account == "globex" and day in tier_c:
            expected["tier"] = "C"
        assert row == expected, (account, day)
    assert {plain[a, d]["band"] for a, d in plain} == {"green"}
    assert {plain["globex", d]["tier"] for d in tier_c} == {"S"}

    def made(account: str) -> list[tuple[date, Trigger | None, list[str]]]:
        return [
            (c.computed_at.date(), c.trigger, list(c.overridden))
            for c in changes
            if c.account_id == account and c.computed_at.date() > DAY0
        ]

    assert made("acme") == [
        (_day(3), Trigger.override, ["band"]),
        (_day(8), Trigger.sweep, []),  # lapsed at the close after it expired
    ]
    assert made("globex") == [
        (_day(2), Trigger.override, ["tier"]),
        (_day(6), Trigger.override, []),
    ]
    assert [c for c in changes if c.account_id == "initech"] == [
        c for c in plain_changes if c.account_id == "initech"
    ]
    assert result.intake.rejected == {}


def test_a_silence_mutes_its_rule_in_its_window_and_nowhere_else(tmp_path: Path) -> None:
    """acme and globex stop being used on day 10 and are reminded of their churn risk
    every day; acme's reminders are silenced from day 20 until day 26."""
    events = _history(tmp_path / "events.jsonl", quiet_from={"acme": 10, "globex": 10}, days=40)
    silence = {
        "account_id": "acme",
        "rule": "churn_risk_raised",
        "starts_at": _at(20, 0),
        "ends_at": _at(26, 0),
        "comment": "CSM on it",
    }
    silences = _write(tmp_path / "silences.yaml", {"silences": [silence]})

    _, _, plain = _replay(tmp_path, events, None, "plain")
    _, _, silenced = _replay(tmp_path, events, load_actions(silences=[silences]), "silenced")

    def muted(notice: tuple[date, str, str]) -> bool:
        day, owner, rule = notice
        in_window = _day(20) <= day < _day(26)
        return in_window and owner == "acme@vendor.example" and rule == "churn_risk_raised"

    (before,), (after,) = plain.notices, silenced.notices
    assert sum(map(muted, before)) == 5  # days 20 to 25 but 24, when nothing changed
    assert after == [n for n in before if not muted(n)]
    assert ("globex@vendor.example", "churn_risk_raised") in {(o, r) for d, o, r in after}


def test_overrides_of_accounts_not_seen_or_after_the_last_day_are_counted(
    tmp_path: Path,
) -> None:
    events = _history(tmp_path / "events.jsonl", days=5)
    entry = {"field": "band", "value": "red", "expires_at": _at(30, 0)}
    overrides = tmp_path / "overrides.json"  # JSON is YAML too
    document = {
        "overrides": [
            {**entry, "account_id": "nobody", "set_at": _at(1, 0)},
            {**entry, "account_id": "acme", "set_at": _at(9, 0)},
        ]
    }
    overrides.write_bytes(orjson.dumps(document))

    rows, _, result = _replay(tmp_path, events, load_actions([overrides]), "run")

    assert {row["band"] for row in rows.values()} == {"green"}
    assert result.intake.rejected == {"override_unknown_account": 1, "override_after_last_day": 1}


OVERRIDE = {
    "account_id": "acme",
    "field": "band",
    "value": "red",
    "set_at": "2026-03-02T10:00:00Z",
    "expires_at": "2026-03-09T10:00:00Z",
}
SILENCE = {
    "rule": "churn_risk_raised",
    "starts_at": "2026-03-02T10:00:00Z",
    "ends_at": "2026-03-09T10:00:00Z",
}


@pytest.mark.parametrize(
    ("kind", "document", "problem"),
    [
        (
            "overrides",
            {"overrides": [OVERRIDE, {**OVERRIDE, "account_id": "globex", "value": "S"}]},
            "overrides[1] (account globex): Value error, value must be one of "
            "['green', 'yellow', 'red'] for field band",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "expires_at": "2026-03-01T10:00:00Z"}]},
            "overrides[0] (account acme): Value error, expires_at must be after set_at",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "expires_at": "2027-03-09T10:00:00Z"}]},
            "overrides[0] (account acme): Value error, expires_at must be within 366 days",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "lifted_at": "2026-03-10T10:00:00Z"}]},
            "lifted_at must be after set_at and before expires_at",
        ),
        (
            "overrides",
            {"overrides": [{k: v for k, v in OVERRIDE.items() if k != "set_at"}]},
            "overrides[0] (account acme).set_at: Field required",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "set_at": "2026-03-02T10:00:00"}]},
            "overrides[0] (account acme).set_at: Input should have timezone info",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "expire_at": "2026-03-09T10:00:00Z"}]},
            "overrides[0] (account acme).expire_at: Extra inputs are not permitted",
        ),
        (
            "overrides",
            {"overrides": [{**OVERRIDE, "expires_at": "9999-12-31T23:00:00-05:00"}]},
            "expires_at: out of range: must be between years 1 and 9999 in UTC",
        ),
        ("overrides", [OVERRIDE], "the file (a list under overrides:)"),
        ("overrides", {"silences": [SILENCE]}, "overrides: Field required"),
        (
            "silences",
            {"silences": [{**SILENCE, "rule": None}]},
            "silences[0]: Value error, a silence needs at least one of account_id, rule, "
            "tier, owner",
        ),
        (
            "silences",
            {"silences": [{k: v for k, v in SILENCE.items() if k != "starts_at"}]},
            "silences[0].starts_at: Field required",
        ),
        (
            "silences",
            {"silences": [{**SILENCE, "account_id": "acme", "ends_at": SILENCE["starts_at"]}]},
            "silences[0] (account acme): Value error, ends_at must be after starts_at",
        ),
        ("silences", {"silences": [{**SILENCE, "tier": "Z"}]}, "silences[0].tier: Input should"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_file_the_entry_and_the_field(
    tmp_path: Path, kind: str, document: Any, problem: str
) -> None:
    path = _write(tmp_path / f"{kind}.yaml", document)

    with pytest.raises(run.BacktestError) as refused:
        load_actions(**{kind: [path]})

    message = str(refused.value)
    assert message.startswith(f"{path} is invalid:\n"), message
    assert problem in message, message


def test_files_that_are_not_yaml_or_not_there_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "silences.yaml"
    broken.write_text("silences: [unclosed\n")

    with pytest.raises(run.BacktestError, match=re.escape(f"{broken}: not valid YAML or JSON")):
        load_actions(silences=[broken])
    with pytest.raises(run.BacktestError, match=re.escape("none.yaml: cannot read")):
        load_actions(overrides=[tmp_path / "none.yaml"])


def test_the_command_takes_both_files_and_refuses_a_bad_one(tmp_path: Path) -> None:
    events = _history(tmp_path / "events.jsonl", days=6)
    overrides = _write(tmp_path / "overrides.yaml", {"overrides": [OVERRIDE]})
    silences = _write(tmp_path / "silences.yaml", {"silences": [SILENCE]})
    bad = _write(tmp_path / "bad.yaml", {"silences": [{**SILENCE, "rule": None}]})
    daily = tmp_path / "daily.jsonl"
    runner = CliRunner()
    given = ["backtest", "--events", str(events), "--no-progress", "--daily", str(daily)]

    shown = runner.invoke(app, [*given, "--overrides", str(overrides), "--silences", str(silences)])
    refused = runner.invoke(app, [*given, "--silences", str(bad)])

    assert shown.exit_code == 0, shown.output
    bands = {
        (r["account_id"], r["day"]): r["band"]
        for r in map(orjson.loads, daily.read_bytes().splitlines())
    }
    assert bands["acme", _day(0).isoformat()] == "red"
    assert bands["globex", _day(0).isoformat()] == "green"
    assert refused.exit_code == 2
    assert f"backtest: {bad} is invalid:" in refused.output
    assert "silences[0]: Value error, a silence needs at least one of" in refused.output
