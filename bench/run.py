"""`make bench`: Vitals beside the ceiling and a Quix Streams peer, on one machine.

    BENCH_SCALE=small make bench     # 10,000 accounts, 200,000 events (under 5 minutes)
    make bench                       # 10,000 and 1,000,000 accounts, 5,000,000 events each

Needs the local Kafka and PostgreSQL (`make bench` starts them). Writes
bench/results/<scale>-<time>.json and bench/results/<scale>-latest.{json,png}, and
rewrites the summary table in docs/benchmarks.md between its markers. Every figure is
the median of ``BENCH_RUNS`` runs (default 3) with its min and max.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import measure
from bench.measure import Throughput, say
from bench.workload import Workload, encode, segment_track

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PARTITIONS = 6


@dataclass(frozen=True)
class Scale:
    name: str
    workloads: tuple[Workload, ...]
    cap_s: float  # longest a single consumer measurement may take
    http_events: int
    open_loop_s: float  # how long each open-loop rate is held
    sweep_accounts: int
    variants: bool = True  # static-membership recovery, two-worker ingest

    @property
    def sweep_cap_s(self) -> float:
        return 3 * self.cap_s


SCALES = {
    "smoke": Scale(
        "smoke", (Workload(accounts=1_000, events=20_000),), 30, 5_000, 3, 5_000, variants=False
    ),
    "small": Scale(
        "small", (Workload(accounts=10_000, events=200_000),), 5, 10_000, 3, 10_000, False
    ),
    "full": Scale(
        "full",
        (
            Workload(accounts=10_000, events=5_000_000),
            Workload(accounts=1_000_000, events=2_000_000),
        ),
        20,
        100_000,
        10,
        1_000_000,
    ),
}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def repeat(
    runs: int, label: str, measure_once: Callable[[], Awaitable[Throughput]]
) -> dict[str, Any]:
    results = []
    for run in range(1, runs + 1):
        say(f"{label}: run {run}/{runs}")
        result = await measure_once()
        say(f"{label}: {result.per_second:,.0f} events/s")
        results.append(result)
    summary: dict[str, Any] = {"events_per_s": spread([r.per_second for r in results])}
    rss = [r.peak_rss_mb for r in results if r.peak_rss_mb is not None]
    cpu = [c for r in results if (c := r.cpu_s_per_million) is not None]
    if rss:
        summary["peak_rss_mb"] = spread(rss)
    if cpu:
        summary["cpu_s_per_million_events"] = spread(cpu)
    summary["events_measured"] = [r.events for r in results]
    return summary


async def bench_workload(
    workload: Workload, scale: Scale, runs: int, bootstrap: str, postgres: str
) -> dict[str, Any]:
    label = f"{workload.accounts:,} accounts"
    say(f"{label}: generating {workload.events:,} events (seed {workload.seed})")
    records = [encode(event) for event in workload.stream()]
    topic = f"bench.{uuid.uuid4().hex[:8]}.events"
    await measure.create_topic(bootstrap, topic, PARTITIONS)
    loaded = await measure.load_topic(bootstrap, topic, records)
    total = len(records)
    del records  # gigabytes at full scale; the topic holds them now
    logs = ROOT / "var" / "bench"
    result: dict[str, Any] = {
        "accounts": workload.accounts,
        "events": total,
        "topic_partitions": PARTITIONS,
        "producer_load_events_per_s": loaded.per_second,
    }
    result["ceiling"] = await repeat(
        runs, f"{label} ceiling", lambda: measure.ceiling(bootstrap, topic, PARTITIONS, total)
    )
    result["vitals_scoring"] = await repeat(
        runs,
        f"{label} vitals scoring",
        lambda: measure.vitals_scoring(
            bootstrap, postgres, topic, total, scale.cap_s, logs / "scoring.log"
        ),
    )
    catch_up = result["vitals_scoring"]["events_per_s"]["median"]
    result.update(await bench_open_loop(workload, scale, catch_up, bootstrap, postgres, logs))
    if workload is scale.workloads[0]:  # recovery does not depend on the portfolio's size
        result.update(await bench_recovery(label, scale, runs, bootstrap, postgres, topic, total))
    # Both guarantees on the first workload; the others show how the peer scales with
    # the portfolio, at-least-once like Vitals' default.
    first = workload is scale.workloads[0]
    for guarantee in ("at-least-once", "exactly-once") if first else ("at-least-once",):
        result[f"quix_{guarantee.replace('-', '_')}"] = await repeat(
            runs,
            f"{label} quix {guarantee}",
            lambda g=guarantee: measure.quix_peer(  # type: ignore[misc]
                bootstrap, topic, total, scale.cap_s, g, logs / "quix.log"
            ),
        )
    return result


async def bench_recovery(
    label: str, scale: Scale, runs: int, bootstrap: str, postgres: str, topic: str, total: int
) -> dict[str, Any]:
    result = {}
    log = ROOT / "var" / "bench" / "scoring.log"
    for static in (False, True) if scale.variants else (False,):
        membership = "static" if static else "dynamic"
        recoveries = []
        for run in range(1, runs + 1):
            say(f"{label} recovery after SIGKILL, {membership} membership: run {run}/{runs}")
            recoveries.append(
                await measure.vitals_recovery(bootstrap, postgres, topic, total, log, static)
            )
            say(f"{label} recovery after SIGKILL: {recoveries[-1]:.1f} s")
        result[f"vitals_recovery_after_sigkill_{membership}_s"] = spread(recoveries)
    return result


OPEN_LOOP_SHARES = (0.5, 0.8, 1.0)


async def bench_open_loop(
    workload: Workload, scale: Scale, catch_up: float, bootstrap: str, postgres: str, logs: Path
) -> dict[str, list[dict[str, Any]]]:
    """Fixed rates below and at Vitals' catch-up rate: is lag stable, and the latency from
    an event's send to its durable score. The peer runs at the highest of those rates."""
    rates = [max(100.0, catch_up * share) for share in OPEN_LOOP_SHARES]
    # Generated once for the highest rate; a lower one sends the beginning of it.
    source = Workload(
        accounts=workload.accounts,
        events=int(max(rates) * scale.open_loop_s) + 200,
        seed=workload.seed + 100,
    )
    records = [encode(event) for event in source.stream()]

    def vitals(topic: str) -> AbstractAsyncContextManager[measure.UnderTest]:
        return measure.vitals_running(bootstrap, postgres, topic, logs / "scoring.log")

    def peer(topic: str) -> AbstractAsyncContextManager[measure.UnderTest]:
        return measure.quix_running(bootstrap, topic, "at-least-once", logs / "quix.log")

    return {
        "vitals_open_loop": [
            await _open_loop_run("vitals", records, scale, rate, bootstrap, vitals)
            for rate in rates
        ],
        "quix_open_loop": [
            await _open_loop_run(
                "quix peer (at-least-once)", records, scale, max(rates), bootstrap, peer
            )
        ],
    }


async def _open_loop_run(
    name: str,
    records: list[tuple[bytes, bytes]],
    scale: Scale,
    rate: float,
    bootstrap: str,
    running: Callable[[str], AbstractAsyncContextManager[measure.UnderTest]],
) -> dict[str, Any]:
    needed = records[: int(rate * scale.open_loop_s) + 200]
    say(f"{name} open loop at {rate:,.0f} events/s for {scale.open_loop_s:.0f} s")
    run = await measure.open_loop(bootstrap, needed, rate, scale.open_loop_s, PARTITIONS, running)
    verdict = "sustained" if run.sustained else "lag grows"
    say(f"{name} open loop at {rate:,.0f}/s: {verdict}, p99 {run.percentile_ms(0.99):.0f} ms")
    return {
        "rate_events_per_s": rate,
        "events": run.produced,
        "sustained": run.sustained,
        "lag_at_half": run.lag_at_half,
        "lag_at_end": run.lag_at_end,
        "latency_p50_ms": run.percentile_ms(0.5),
        "latency_p99_ms": run.percentile_ms(0.99),
        "latency_p999_ms": run.percentile_ms(0.999),
    }


async def bench_ingest(scale: Scale, runs: int, bootstrap: str, postgres: str) -> dict[str, Any]:
    """Segment ``/v1/batch`` and native ``/v1/events`` as fast as answered, then Segment
    at half the rate reached, open loop, for request latency under load."""
    # Accounts in proportion, so that usage, not the billing events, makes up the load.
    accounts = min(10_000, scale.http_events // 20)
    stream = Workload(accounts=accounts, events=scale.http_events).stream()
    # As a sender posts them: ingest sets received_at itself.
    events = [{k: v for k, v in e.items() if k != "received_at"} for e in stream]
    tracks = [segment_track(e) for e in events if e["kind"] == "usage"]
    log = ROOT / "var" / "bench" / "ingest.log"
    segment, native = measure.SEGMENT_BATCH, measure.NATIVE
    rows = [
        await _ingest_row(segment.path, runs, bootstrap, postgres, segment, tracks, 8, None, log),
        await _ingest_row(native.path, runs, bootstrap, postgres, native, events, 8, None, log),
    ]
    if scale.variants:
        row = await _ingest_row(
            f"{segment.path}, 2 worker processes",
            runs,
            bootstrap,
            postgres,
            segment,
            tracks,
            16,
            None,
            log,
            workers=2,
        )
        rows.append(row)
    half = rows[0]["events_per_s"]["median"] / 2
    rows.append(
        await _ingest_row(
            f"{segment.path} at {half:,.0f} events/s (open loop)",
            runs,
            bootstrap,
            postgres,
            segment,
            tracks,
            64,
            half,
            log,
        )
    )
    return {"batch_events": HTTP_BATCH, "rows": rows}


HTTP_BATCH = 100


async def _ingest_row(
    label: str,
    runs: int,
    bootstrap: str,
    postgres: str,
    shape: measure.HttpShape,
    events: list[dict[str, object]],
    concurrency: int,
    rate: float | None,
    log: Path,
    workers: int = 1,
) -> dict[str, Any]:
    rates, p50, p99, rss, cpu = [], [], [], [], []
    for run in range(1, runs + 1):
        say(f"ingest {label}: run {run}/{runs} ({len(events):,} events, batches of {HTTP_BATCH})")
        result, latencies = await measure.ingest_http(
            bootstrap, postgres, events, shape, HTTP_BATCH, concurrency, log, rate, workers
        )
        latencies.sort()
        rates.append(result.per_second)
        rss.append(result.peak_rss_mb or 0.0)
        cpu.append(result.cpu_s_per_million or 0.0)
        p50.append(latencies[len(latencies) // 2] * 1000)
        p99.append(latencies[int(len(latencies) * 0.99)] * 1000)
        say(f"ingest {label}: {result.per_second:,.0f} events/s, p99 {p99[-1]:.1f} ms")
    return {
        "label": label,
        "concurrency": concurrency,
        "events_per_s": spread(rates),
        "request_p50_ms": spread(p50),
        "request_p99_ms": spread(p99),
        "peak_rss_mb": spread(rss),
        "cpu_s_per_million_events": spread(cpu),
    }


def machine() -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    versions = {
        name: metadata.version(name)
        for name in ("aiokafka", "SQLAlchemy", "asyncpg", "fastapi", "orjson")
    }
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "packages": versions,
        "quixstreams": _peer_version(),
    }


def _kafka_version() -> str:
    pom = (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka.version>(\d[^<]*)</kafka.version>", pom)
    return found.group(1) if found else "unknown"


def _peer_version() -> str:
    for path in (ROOT / ".venv-peer").glob("lib/python*/site-packages/quixstreams-*.dist-info"):
        return path.name.removeprefix("quixstreams-").removesuffix(".dist-info")
    return "not installed"


async def bench_sweep(scale: Scale, bootstrap: str, postgres: str) -> dict[str, Any]:
    from bench.sweep import sweep

    say(f"sweep over {scale.sweep_accounts:,} accounts (one run)")
    log = ROOT / "var" / "bench" / "sweep.log"
    result = await sweep(bootstrap, postgres, scale.sweep_accounts, log, scale.sweep_cap_s)
    say(
        f"sweep: {result['accounts']:,} accounts in {result['sweep_s']:.1f} s, "
        f"peak RSS {result['peak_rss_mb']:,.0f} MiB"
    )
    return result


PARTS = ("ingest", "scoring", "alerts")


async def main() -> None:
    scale = SCALES[os.environ.get("BENCH_SCALE", "full")]
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    parts = [p.strip() for p in os.environ.get("BENCH_ONLY", ",".join(PARTS)).split(",")]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    bootstrap = os.environ.get("VITALS_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    postgres = os.environ["VITALS_TEST_POSTGRES_URL"]
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    for part in parts:
        started = time.perf_counter()
        report: dict[str, Any] = {
            "part": part,
            "scale": scale.name,
            "runs": runs,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "command": f"BENCH_SCALE={scale.name} make bench-{part}",
        }
        if part == "ingest":
            report["ingest_http"] = await bench_ingest(scale, runs, bootstrap, postgres)
        elif part == "scoring":
            report["workloads"] = [
                await bench_workload(w, scale, runs, bootstrap, postgres) for w in scale.workloads
            ]
            report["sweep"] = await bench_sweep(scale, bootstrap, postgres)
        else:
            from bench.alerts import bench_alerts

            report["alerts"] = await bench_alerts(scale.name, runs, bootstrap, postgres)
        report["seconds"] = round(time.perf_counter() - started)
        write(report)
        say(f"{part} done in {report['seconds']} s")


def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{report['scale']}-{report['part']}"
    stamp = report["started_at"].replace(":", "").replace("-", "")
    text = json.dumps(report, indent=2)
    (RESULTS / f"{name}-{stamp}.json").write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    from bench.report import chart, markdown

    if report["part"] == "scoring":
        chart(report, RESULTS / f"{name}-latest.png")
    begin, end = f"<!-- bench:{report['part']}:begin -->", f"<!-- bench:{report['part']}:end -->"
    document = DOC.read_text()
    head, found, rest = document.partition(begin)
    if not found:
        raise SystemExit(f"{DOC}: no {begin} marker")
    _, _, tail = rest.partition(end)
    DOC.write_text(f"{head}{begin}\n{markdown(report)}\n{end}{tail}")
    say(f"wrote {RESULTS}/{name}-latest.json and {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
