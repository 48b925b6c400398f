"""The console at portfolio size: how fast the pages CSMs open answer, and the API
calls behind them, with N accounts in PostgreSQL.

Real account states come from scoring a small workload (500 accounts, through Kafka);
they are cloned in SQL up to N (as the sweep benchmark does), with no partition, so
the scoring process under test sweeps none of them and the figures are the pages'
own. Scoring, alerts and the console run as processes on loopback; each request is
timed on its own, one after another, after a warm-up.

``make bench-console`` (``BENCH_SCALE=small``: 20,000 accounts). Results go to
``bench/results/<scale>-console-latest.json``; docs/console.md quotes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench import measure
from bench.measure import say
from bench.sweep import seeded_scoring
from tests.support.infra import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ACCOUNTS = {"full": 1_000_000, "small": 20_000, "smoke": 2_000}
REQUESTS = {"full": 200, "small": 100, "smoke": 20}
WARM_UP = 10


async def main() -> None:
    scale = os.environ.get("BENCH_SCALE", "full")
    bootstrap = os.environ.get("VITALS_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    postgres = os.environ["VITALS_TEST_POSTGRES_URL"]
    log = ROOT / "var" / "bench" / "console.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "part": "console",
        "scale": scale,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"BENCH_SCALE={scale} make bench-console",
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
    }
    report.update(await measure_console(bootstrap, postgres, ACCOUNTS[scale], REQUESTS[scale], log))
    report["seconds"] = round(time.perf_counter() - started)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{scale}-console-latest.json").write_text(json.dumps(report, indent=2))
    _print(report)


async def measure_console(
    bootstrap: str, postgres: str, accounts: int, requests: int, log: Path
) -> dict[str, Any]:
    seeding = seeded_scoring(bootstrap, postgres, accounts, log, "console")
    async with seeding as (scoring, seeded):
        async with scoring.engine.begin() as connection:
            await connection.execute(text("UPDATE accounts SET partition = NULL"))
            ids = list((await connection.execute(text(SAMPLE), {"n": requests})).scalars())
            # The seed workload names no owners: then one owner's reads are of a book
            # with no accounts, through the same index.
            owners = list((await connection.execute(text(OWNERS))).scalars()) or ["nobody@x"]
        say(f"console: {seeded:,} accounts in the database")
        await scoring.start()
        async with _alerts_and_console(scoring, log) as (console, alerts):
            timings = await _time_pages(scoring.port, alerts, console, ids, owners, requests)
    return {"accounts": seeded, "requests_each": requests, "latency_ms": timings}


SAMPLE = "SELECT account_id FROM accounts TABLESAMPLE SYSTEM (1) LIMIT :n"
OWNERS = "SELECT DISTINCT owner FROM accounts WHERE owner IS NOT NULL"


@asynccontextmanager
async def _alerts_and_console(
    scoring: measure.ScoringUnderTest, log: Path
) -> AsyncIterator[tuple[str, str]]:
    alerts_db = await create_database(os.environ["VITALS_TEST_POSTGRES_URL"])
    env = {**scoring.env, "VITALS_ALERTS_DATABASE_URL": alerts_db}
    env["VITALS_ALERTS_CONSUMER_GROUP"] = f"bench-alerts-{uuid.uuid4().hex[:8]}"
    await measure.migrate("alerts", env, log)
    alerts_port, console_port = measure.free_port(), measure.free_port()
    env["VITALS_CONSOLE_SCORING_URL"] = f"http://127.0.0.1:{scoring.port}"
    env["VITALS_CONSOLE_ALERTS_URL"] = f"http://127.0.0.1:{alerts_port}"
    processes = [
        await measure.start_process(_serve("alerts", alerts_port), log, env),
        await measure.start_process(_serve("console", console_port), log, env),
    ]
    try:
        for port in (scoring.port, alerts_port, console_port):
            await _until_ready(port)
        yield f"http://127.0.0.1:{console_port}", f"http://127.0.0.1:{alerts_port}"
    finally:
        for process in processes:
            await measure.stop_process(process)
        await drop_database(os.environ["VITALS_TEST_POSTGRES_URL"], alerts_db)


def _serve(service: str, port: int) -> list[str]:
    return [sys.executable, "-m", "services", "serve", service, "--port", str(port)]


async def _until_ready(port: int, timeout_s: float = 120) -> None:
    deadline = time.perf_counter() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.perf_counter() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the service on port {port} was not ready in {timeout_s:.0f} s")


async def _time_pages(
    scoring_port: int,
    alerts: str,
    console: str,
    ids: list[str],
    owners: list[str],
    requests: int,
) -> dict[str, dict[str, float]]:
    since = (datetime.now(UTC) - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rng = random.Random(7)
    api = f"http://127.0.0.1:{scoring_port}"
    cases: dict[str, Any] = {
        "api: accounts, first page (by score)": lambda: f"{api}/v1/accounts?limit=50",
        "api: accounts, high risk by 7-day change": lambda: (
            f"{api}/v1/accounts?risk=high&sort=change&limit=100"
        ),
        "api: accounts, by MRR, descending": lambda: f"{api}/v1/accounts?sort=mrr&order=desc",
        "api: attention list, everyone's": lambda: f"{api}/v1/attention?limit=30",
        "api: attention list, one owner's": lambda: (
            f"{api}/v1/attention?limit=30&owner={rng.choice(owners)}"
        ),
        "api: accounts, not churned, counted": lambda: (
            f"{api}/v1/accounts?churned=false&count=true"
        ),
        "api: accounts, search by id prefix": lambda: f"{api}/v1/accounts?q={rng.choice(ids)[:8]}",
        "api: one account": lambda: f"{api}/v1/accounts/{rng.choice(ids)}",
        "api: one account's history (90 days)": lambda: (
            f"{api}/v1/accounts/{rng.choice(ids)}/history?since={since}&limit=1000"
        ),
        "api: one account's alerts": lambda: f"{alerts}/v1/alerts?account_id={rng.choice(ids)}",
        "console: accounts list, first page": lambda: f"{console}/accounts",
        "console: account page": lambda: f"{console}/accounts/{rng.choice(ids)}",
        "console: portfolio": lambda: f"{console}/",
        "console: accounts CSV export, one owner's": lambda: (
            f"{console}/accounts.csv?owner={rng.choice(owners)}"
        ),
    }
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        cookie = await _sign_in(client, console)
        for name, url in cases.items():
            say(f"console: timing {name}")
            results[name] = await _timed(client, url, cookie, requests)
    return results


async def _sign_in(client: httpx.AsyncClient, console: str) -> dict[str, str]:
    """Keys are not checked here (development settings): any name and key sign in."""
    response = await client.post(f"{console}/sign-in", data={"name": "bench", "key": "k"})
    assert response.status_code == 303, response.text
    return dict(response.cookies)


async def _timed(
    client: httpx.AsyncClient, url: Any, cookies: dict[str, str], requests: int
) -> dict[str, float]:
    seconds: list[float] = []
    for n in range(WARM_UP + requests):
        began = time.perf_counter()
        response = await client.get(url(), cookies=cookies)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(
                f"{response.request.url}: {response.status_code} {response.text[:300]}"
            )
        if n >= WARM_UP:
            seconds.append(elapsed * 1000)
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1), "max": round(max(seconds), 1)}


def _print(report: dict[str, Any]) -> None:
    each = report["requests_each"]
    say(f"{report['accounts']:,} accounts, {each} requests each, in {report['seconds']} s")
    print(f"{'':44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, figures in report["latency_ms"].items():
        print(f"{name:44} {figures['p50']:>8} {figures['p99']:>8} {figures['max']:>8}")


if __name__ == "__main__":
    asyncio.run(main())
