"""Schemathesis over the OpenAPI documents of ingest, scoring and alerts, each running on
real Kafka and PostgreSQL: once with valid credentials and once without.

Every run must find no 5xx, every answer as documented, every error a Problem
(Segment's shape on Segment's paths), and, without a key, 401 on every operation
that needs one, whatever its parameters and body (tests/support/fuzz_checks.py).
The seed and the number of examples are fixed, so a run is repeatable.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.alerts.app import MIGRATIONS as ALERTS_MIGRATIONS
from services.alerts.app import create_app as create_alerts_app
from services.ingest.app import create_app as create_ingest_app
from services.scoring.app import create_app as create_scoring_app
from shared.auth import KeyRing, Scope, load_keys_file
from shared.scores import Risk
from tests.support.alerts_messages import enriched_change, facts
from tests.support.apps import alerts_settings
from tests.support.auth import make_keys_file
from tests.support.clock import FakeClock
from tests.support.infra import migrated_to
from tests.support.ingest_apps import ingest_test_settings, migrated
from tests.support.kafka import produce
from tests.support.scoring_service import settings_for, stored_account
from tests.support.servers import is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("st")
SEED = "20261128"
EXAMPLES = "12"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "error_bodies_are_problems",
        "no_key_is_refused_first",
    ]
)
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
# The account the scoring fuzz reads besides random ids: a "/" in it, on purpose.
KNOWN_ACCOUNT = "team/acme"


@dataclass(frozen=True)
class Run:
    """One schemathesis run: its credentials, the operations it covers, and the ids
    of items that exist (path parameter -> id)."""

    name: str
    headers: dict[str, str]
    options: tuple[str, ...] = ()
    known_ids: tuple[tuple[str, str], ...] = ()

    @property
    def keyed(self) -> bool:
        return bool(self.headers)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    """A keys file with one key of every scope."""
    path, keys = make_keys_file(tmp_path, {"fuzz": [Scope.ingest, Scope.read, Scope.admin]})
    return path, keys["fuzz"]


async def test_ingest(
    kafka: str, topics: dict[str, str], database: str, keys: tuple[Path, str], tmp_path: Path
) -> None:
    keys_file, key = keys
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets="whsec_fuzz",
        api_keys_file=keys_file,
    )
    runs = [Run("ingest with a key", {"X-API-Key": key}), Run("ingest without a key", {})]
    await _fuzz(_unthrottled(create_ingest_app(settings), keys_file), runs, tmp_path)


async def test_scoring(
    kafka: str, topics: dict[str, str], scoring_db: str, keys: tuple[Path, str], tmp_path: Path
) -> None:
    keys_file, key = keys
    clock = FakeClock()
    await stored_account(scoring_db, KNOWN_ACCOUNT, clock.now)
    settings = settings_for(kafka, scoring_db, topics, api_keys_file=keys_file)
    known = (("account_id", KNOWN_ACCOUNT),)
    runs = [
        Run("scoring with a key", {"X-API-Key": key}, known_ids=known),
        Run("scoring without a key", {}, known_ids=known),
    ]
    await _fuzz(_unthrottled(create_scoring_app(settings, clock), keys_file), runs, tmp_path)


async def test_alerts(
    kafka: str, topics: dict[str, str], database: str, keys: tuple[Path, str], tmp_path: Path
) -> None:
    keys_file, key = keys
    await migrated_to(database, ALERTS_MIGRATIONS)
    settings = alerts_settings(
        kafka=kafka,
        database=database,
        topics=topics,
        alerts_topic=f"{topics['scores_topic']}.alerts",
        alerts_admin_token=ADMIN_TOKEN,
        api_keys_file=keys_file,
    )
    clock = FakeClock()
    async with serve(_unthrottled(create_alerts_app(settings, clock), keys_file)) as url:
        alert_id = await _an_open_alert(url, key, kafka, topics, clock)
        known = (("alert_id", alert_id),)
        runs = [
            # Both are Authorization headers: the read routes and the admin API apart.
            Run("alerts with a key", {"X-API-Key": key}, ("--exclude-tag", "admin"), known),
            Run(
                "alerts admin with the token",
                {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                ("--include-tag", "admin"),
            ),
            Run("alerts without a key", {}, known_ids=known),
        ]
        await _fuzz_running(url, runs, tmp_path)


def _unthrottled(app: FastAPI, keys_file: Path) -> FastAPI:
    """``app`` with no limit on requests without a key: the run without one sends
    hundreds from one address, and must see each one's 401."""
    entries = load_keys_file(keys_file).keys
    app.state.keyring = KeyRing(entries, "100000/second", unauthenticated_rate="100000/second")
    return app


async def _an_open_alert(
    url: str, key: str, kafka: str, topics: dict[str, str], clock: FakeClock
) -> str:
    change = enriched_change(
        account_id=KNOWN_ACCOUNT,
        risk=Risk.high,
        computed_at=clock.now,
        account=facts(last_usage_at=clock.now),
    )
    await produce(kafka, topics["scores_topic"], [(change.account_id.encode(), change.to_bytes())])
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}) as client:

        async def listed() -> list[dict[str, Any]]:
            alerts: list[dict[str, Any]] = (await client.get("/v1/alerts")).json()["alerts"]
            return alerts

        (alert,) = await wait_for(listed, 30, "the alert the fuzz snoozes and acks")
    alert_id: str = alert["id"]
    return alert_id


async def _fuzz(app: FastAPI, runs: list[Run], tmp_path: Path) -> None:
    async with serve(app) as url:
        await _fuzz_running(url, runs, tmp_path)


async def _fuzz_running(url: str, runs: list[Run], tmp_path: Path) -> None:
    await wait_for(lambda: _ready(url), 30, "the service to be ready")
    # One run at a time: on a 2-core runner, parallel runs starve the tests beside them.
    reports = [await _schemathesis(url, run, tmp_path) for run in runs]
    for run, (code, report) in zip(runs, reports, strict=True):
        assert code == 0, f"{run.name}:\n{report[-8000:]}"
        assert re.search(r"\d+ generated", report), f"{run.name}: no cases?\n{report[-3000:]}"
        print(f"{run.name}: {_summary(report)}")


async def _ready(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url) as client:
        return await is_ready(client)


async def _schemathesis(url: str, run: Run, tmp_path: Path) -> tuple[int, str]:
    workdir = tmp_path / re.sub(r"\W+", "-", run.name)
    workdir.mkdir()
    headers = [arg for name, value in run.headers.items() for arg in ("-H", f"{name}: {value}")]
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        # Without a key every answer is a 401: the coverage phase's deterministic
        # malformed values are what could slip past it, random data adds little.
        "examples,coverage,fuzzing" if run.keyed else "coverage",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--no-color",
        *headers,
        *run.options,
        cwd=workdir,  # its example database stays out of the tree
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.support.fuzz_checks",
            "VITALS_FUZZ_KEYED": "1" if run.keyed else "0",
            "VITALS_FUZZ_KNOWN_IDS": json.dumps(dict(run.known_ids)),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, output.decode(errors="replace")


def _summary(report: str) -> str:
    """Phase times and case counts, e.g. ``Coverage (in 9.1s) | 494 generated, 494 passed``."""
    pattern = r"\(in [\d.]+s\)|\d+ generated"
    lines = [line.strip(" ✅❌🚫⏭") for line in report.splitlines() if re.search(pattern, line)]
    return " | ".join(lines)
