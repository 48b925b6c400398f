"""The backtest and the live services take a CSM's override and silence the same way.

The same events go to the live scoring and alerts services (real Kafka and PostgreSQL,
one fake clock) and, read back from the very topic scoring consumed, to
``vitals backtest``. A band override is set through the scoring API and a silence
through the alerts API; the backtest is given both as files, written from what the
APIs answered. Compared: each account's band (and the risk it makes) after the
override, the score change that says ``overridden``, and the churn-risk notices from
the silence's start (acme's goes out, globex's is silenced) in both.

Not compared: scores and notices before the override. The live consumer scores each
batch as it comes (acme's billing may be scored before its usage, a red first score)
and the backtest each day's close, so they may differ there by design.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from services.alerts.app import MIGRATIONS as ALERTS_MIGRATIONS
from services.alerts.app import create_app as create_alerts_app
from services.backtest import run
from services.backtest.actions import load_actions
from services.scoring.app import create_app as create_scoring_app
from shared.db import create_engine
from shared.migrations import upgrade_to_head
from shared.scores import ScoreChange, Trigger
from tests.support.alerts_messages import TEST_RULES
from tests.support.apps import alerts_settings
from tests.support.clock import FakeClock
from tests.support.kafka import consume, produce
from tests.support.scoring_builders import V1_SCORECARD, billing, traits, usage
from tests.support.scoring_service import applied, records, settings_for
from tests.support.servers import WebhookReceiver, is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ADMIN = {"authorization": "Bearer backtest-live-admin-token-0123456789"}
ACCOUNTS = ("acme", "globex")
RULE = "churn_risk_raised"  # opens at high risk: a red band is high risk in version 1
DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _owner(account: str) -> str:
    return f"{account}@vendor.example"


def _first_day(account: str) -> list[Any]:
    return [
        billing(
            account_id=account, at=DAY0, subscription_status="active", seats=1, mrr_minor=100_000
        ),
        traits(account_id=account, at=DAY0, owner_csm_email=_owner(account)),
        usage(account_id=account, at=DAY0, user_id="u1", feature="report.exported"),
    ]


async def test_an_override_and_a_silence_do_the_same_live_and_in_the_backtest(
    kafka: str,
    scoring_db: str,
    topics: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = create_engine(scoring_db)  # the services' tables side by side in one database
    await upgrade_to_head(engine, ALERTS_MIGRATIONS)
    await engine.dispose()
    clock, receiver = FakeClock(DAY0), WebhookReceiver()
    since = datetime.now(UTC) - timedelta(minutes=1)  # the events' record times from here
    async with serve(receiver.app()) as hook:
        alerts_app = create_alerts_app(
            alerts_settings(
                kafka=kafka,
                database=scoring_db,
                topics=topics,
                alerts_topic=f"{topics['scores_topic']}.alerts",
                alerts_webhook_url=f"{hook}/hook",
                alerts_admin_token=ADMIN["authorization"].removeprefix("Bearer "),
            ),
            clock,
        )
        scoring_app = create_scoring_app(settings_for(kafka, scoring_db, topics), clock)
        async with (
            serve(scoring_app) as scoring_url,
            serve(alerts_app) as alerts_url,
            httpx.AsyncClient(base_url=scoring_url) as scoring,
            httpx.AsyncClient(base_url=alerts_url, headers=ADMIN) as alerts,
        ):
            await wait_for(lambda: is_ready(alerts), 30, "alerts to be ready")
            # Day 0: two paying accounts in use. Day 1: used again, then a CSM sets both
            # to red, and globex's churn-risk alerts are silenced for two days.
            first = _first_day("acme") + _first_day("globex")
            await produce(kafka, topics["events_topic"], records(first))
            for account in ACCOUNTS:
                await wait_for(applied(scoring, account, 3), 30, f"{account}'s first day")
            clock.advance(timedelta(days=1))
            again = [usage(account_id=a, at=clock.now, user_id="u1") for a in ACCOUNTS]
            await produce(kafka, topics["events_topic"], records(again))
            for account in ACCOUNTS:
                await wait_for(applied(scoring, account, 4), 30, f"{account}'s second day")
            silence = {
                "account_id": "globex",
                "rule": RULE,
                "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
                "ends_at": (clock.now + timedelta(days=2)).isoformat(),
                "comment": "CSM on it",
            }
            silenced = await alerts.post("/v1/silences", json=silence)
            assert silenced.status_code == 201, silenced.text
            override = {
                "field": "band",
                "value": "red",
                "reason": "champion left",
                "created_by": "kim@example.com",
                "expires_at": (clock.now + timedelta(days=7)).isoformat(),
            }
            set_live = {}
            for account in ACCOUNTS:
                made = await scoring.post(f"/v1/accounts/{account}/overrides", json=override)
                assert made.status_code == 201, made.text
                set_live[account] = made.json()

            # Judged live: acme's alert on the override told its CSM, globex's opened muted.
            told = await wait_for(lambda: _told(receiver, "acme"), 30, "acme's notice")
            muted = await wait_for(lambda: _opened(alerts, "globex"), 30, "globex's alert")
            live = {a: (await scoring.get(f"/v1/accounts/{a}")).json() for a in ACCOUNTS}
            sequences = sum(account["sequence"] for account in live.values())
            published = await consume(kafka, topics["scores_topic"], sequences)
            live_changes = [ScoreChange.from_bytes(r.value) for r in published]
        until = datetime.now(UTC) + timedelta(minutes=1)

    # The backtest: the same events, from the topic scoring consumed; the override and
    # the silence as the APIs stored them.
    overrides = [
        {
            "account_id": account,
            "field": found["field"],
            "value": found["value"],
            "set_at": found["created_at"],
            "expires_at": found["expires_at"],
        }
        for account, found in set_live.items()
    ]
    stored = silenced.json()
    silences = [
        {k: stored[k] for k in ("account_id", "rule", "tier", "owner", "starts_at", "ends_at")}
    ]
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump({"overrides": overrides}))
    (tmp_path / "silences.json").write_bytes(orjson.dumps({"silences": silences}))
    actions = load_actions([tmp_path / "overrides.yaml"], [tmp_path / "silences.json"])
    monkeypatch.setenv("VITALS_KAFKA_BOOTSTRAP_SERVERS", kafka)
    replayed: list[ScoreChange] = []
    result = await asyncio.to_thread(
        run.backtest,
        run.Inputs(kafka=run.TopicRange(topics["events_topic"], since, until)),
        run.load_models([V1_SCORECARD]),  # what the live scoring scores with in tests
        run.Outputs(daily=tmp_path / "daily.jsonl"),
        rules_file=TEST_RULES,  # and the rules the live alerts judge with
        progress=False,
        actions=actions,
        on_change=lambda _, change: replayed.append(change),
    )
    rows = [orjson.loads(line) for line in (tmp_path / "daily.jsonl").read_bytes().splitlines()]
    day1 = (DAY0 + timedelta(days=1)).date()

    assert (result.intake.events, dict(result.intake.rejected)) == (8, {})
    on_override = {}
    for account in ACCOUNTS:
        (row,) = [r for r in rows if r["account_id"] == account and r["day"] == day1.isoformat()]
        assert (live[account]["band"], live[account]["computed_band"]) == ("red", "green")
        assert (row["band"], row["risk"], live[account]["risk"]) == ("red", "high", "high")
        on_override[account] = _on_override(live_changes, account)
        assert on_override[account].overridden == ["band"]
        assert _on_override(replayed, account).overridden == ["band"]
    # From the silence's start: acme's churn-risk notice goes out live and in the
    # backtest, globex's in neither (live, its alert opened without a notice).
    assert (told["type"], told["sequence"]) == ("alert.opened", on_override["acme"].sequence)
    assert (muted["notifications"], muted["last_notified_at"]) == (0, None)
    start = datetime.fromisoformat(silence["starts_at"])
    assert not [n for n in _notices(receiver, "globex") if _at(n) >= start]
    (notices,) = result.notices
    assert (day1, _owner("acme"), RULE) in notices
    assert not [n for n in notices if n[1:] == (_owner("globex"), RULE) and n[0] >= day1]


def _on_override(changes: list[ScoreChange], account: str) -> ScoreChange:
    """The change scoring made when it took the account's override."""
    (made,) = [c for c in changes if c.account_id == account and c.trigger is Trigger.override]
    return made


def _notices(receiver: WebhookReceiver, account: str) -> list[dict[str, Any]]:
    return [n for n in receiver.received if n["account_id"] == account and n["rule"] == RULE]


def _at(notice: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(notice["computed_at"])


async def _told(receiver: WebhookReceiver, account: str) -> dict[str, Any] | None:
    """The account's notice of high churn risk on the red band."""
    return next(
        (n for n in _notices(receiver, account) if n["band"] == "red" and _at(n) > DAY0), None
    )


async def _opened(alerts: httpx.AsyncClient, account: str) -> dict[str, Any] | None:
    """The account's churn-risk alert opened on the override (a day after the first)."""
    found = (await alerts.get("/v1/alerts", params={"account_id": account, "rule": RULE})).json()
    return next((a for a in found["alerts"] if datetime.fromisoformat(a["opened_at"]) > DAY0), None)
