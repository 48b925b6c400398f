"""The benchmark report: a chart and the summary table of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure import PEER_COMMIT_INTERVAL_S as PEER_COMMIT_S

SYSTEMS = (
    ("ceiling", "ceiling: aiokafka consume + orjson decode"),
    ("vitals_scoring", "Vitals scoring (state + offsets in PostgreSQL)"),
    ("quix_at_least_once", "Quix Streams peer, at-least-once"),
    ("quix_exactly_once", "Quix Streams peer, exactly-once"),
)


def _figure(summary: dict[str, Any] | None, key: str, unit: str = "", digits: int = 0) -> str:
    if not summary or key not in summary:
        return "-"
    values = summary[key]
    return (
        f"{values['median']:,.{digits}f}{unit} "
        f"({values['min']:,.{digits}f}-{values['max']:,.{digits}f})"
    )


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run `{report['command']}` on {report['started_at']}: {m['cores']} cores, "
        f"{m['memory_gib']} GiB, Python {m['python']}, Apache Kafka {m['kafka']} (single "
        f"node, local), PostgreSQL local, Quix Streams {m['quixstreams']}; "
        f"{', '.join(f'{k} {v}' for k, v in m['packages'].items())}. "
        f"Median of {report['runs']} runs (min-max); took {report['seconds']} s.",
        "",
    ]
    part = report["part"]
    if part == "ingest":
        lines += _ingest(report["ingest_http"])
    elif part == "scoring":
        for workload in report["workloads"]:
            lines += _workload(workload)
        if "sweep" in report:
            lines += _sweep(report["sweep"])
    else:
        lines += _alerts(report["alerts"])
    return "\n".join(lines).rstrip()


def _ingest(http: dict[str, Any]) -> list[str]:
    lines = [
        f"| ingest over HTTP, {http['batch_events']} events a request, acks=all "
        "| clients | events/s | request p50 | request p99 | peak RSS | CPU-s per million |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in http["rows"]:
        lines.append(
            f"| `POST {row['label']}` | {row['concurrency']} | {_figure(row, 'events_per_s')} | "
            f"{_figure(row, 'request_p50_ms', ' ms', 1)} | "
            f"{_figure(row, 'request_p99_ms', ' ms', 1)} | "
            f"{_figure(row, 'peak_rss_mb', ' MiB')} | "
            f"{_figure(row, 'cpu_s_per_million_events', ' s', 1)} |"
        )
    return [*lines, ""]


def _alerts(alerts: dict[str, Any]) -> list[str]:
    lines = ["| alerts | figure |", "|---|---|"]
    for row in alerts["rows"]:
        lines.append(f"| {row['label']} | {_figure(row, 'value', row['unit'], row['digits'])} |")
    return [*lines, ""]


def _sweep(sweep: dict[str, Any]) -> list[str]:
    rate = sweep["accounts_per_s"] or 0
    took = (
        f"in {sweep['sweep_s']:,.1f} s"
        if sweep["complete"]
        else f"in a projected {sweep['sweep_s'] or 0:,.0f} s (measured over the first "
        f"{sweep['swept']:,})"
    )
    return [
        f"Sweep (one run): {sweep['accounts']:,} accounts in the database, re-scored by one "
        f"process {took}, {rate:,.0f} accounts/s; peak RSS {sweep['peak_rss_mb']:,.0f} MiB.",
        "",
    ]


def _workload(workload: dict[str, Any]) -> list[str]:
    lines = [
        f"**{workload['accounts']:,} accounts, {workload['events']:,} events** "
        f"({workload['topic_partitions']} partitions; loaded at "
        f"{workload['producer_load_events_per_s']:,.0f} events/s)",
        "",
        "| consumer | events/s | peak RSS | CPU-s per million events |",
        "|---|---|---|---|",
    ]
    for key, name in SYSTEMS:
        summary = workload.get(key)
        lines.append(
            f"| {name} | {_figure(summary, 'events_per_s')} | "
            f"{_figure(summary, 'peak_rss_mb', ' MiB')} | "
            f"{_figure(summary, 'cpu_s_per_million_events', ' s', 1)} |"
        )
    lines += [
        "",
        "| open loop (events sent at a fixed rate) | lag | event to durable p50 | p99 | p99.9 |",
        "|---|---|---|---|---|",
    ]
    for key, name in OPEN_LOOP_SYSTEMS:
        for run in workload.get(key, []):
            growth = f"{run['lag_at_half']:,} -> {run['lag_at_end']:,}"
            lag = "stable" if run["sustained"] else f"grows ({growth})"
            rate = f"{name}, {run['rate_events_per_s']:,.0f} events/s, {run['events']:,} events"
            lines.append(
                f"| {rate} | {lag} | "
                f"{run['latency_p50_ms']:,.0f} ms | {run['latency_p99_ms']:,.0f} ms | "
                f"{run['latency_p999_ms']:,.0f} ms |"
            )
    return [*lines, "", *_recovery(workload)]


OPEN_LOOP_SYSTEMS = (
    ("vitals_open_loop", "Vitals"),
    ("quix_open_loop", f"Quix Streams peer (at-least-once, commit every {PEER_COMMIT_S:g} s)"),
)


def _recovery(workload: dict[str, Any]) -> list[str]:
    if "vitals_recovery_after_sigkill_dynamic_s" not in workload:
        return []
    dynamic = _figure(workload, "vitals_recovery_after_sigkill_dynamic_s", " s", 1)
    line = (
        f"Vitals scoring, SIGKILL mid-stream to durable progress again: {dynamic} "
        "(dynamic group membership, the default)"
    )
    if "vitals_recovery_after_sigkill_static_s" in workload:
        static = _figure(workload, "vitals_recovery_after_sigkill_static_s", " s", 1)
        line += f"; {static} with static membership (`VITALS_SCORING_INSTANCE_ID`)"
    return [line + ".", ""]


def chart(report: dict[str, Any], path: Path) -> None:
    """Per workload: consumer throughput (Vitals, peer, ceiling), and the latency from
    event to durable position at the open-loop rates (Vitals, peer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = report["workloads"]
    fig, axes = plt.subplots(len(workloads), 2, figsize=(12, 4 * len(workloads)), squeeze=False)
    for (rate_axis, latency_axis), workload in zip(axes, workloads, strict=True):
        _throughput(rate_axis, workload)
        _latency(latency_axis, workload)
    fig.suptitle(f"Scoring on {report['machine']['cores']} cores ({report['scale']} scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput(axis: Any, workload: dict[str, Any]) -> None:
    names = [name.split(" (")[0].split(":")[0] for _, name in SYSTEMS]
    medians = [workload.get(k, {}).get("events_per_s", {}).get("median", 0) for k, _ in SYSTEMS]
    axis.barh(names, medians, color=["#999999", "#2a7ab0", "#e08a2c", "#c0602a"])
    axis.set_xscale("log")
    axis.set_xlabel("events/s, median (log scale)")
    for y, value in enumerate(medians):
        axis.text(value, y, f" {value:,.0f}", va="center")
    axis.set_title(f"{workload['accounts']:,} accounts, {workload['events']:,} events")
    axis.invert_yaxis()


def _latency(axis: Any, workload: dict[str, Any]) -> None:
    styles = {"vitals_open_loop": ("o", "-"), "quix_open_loop": ("s", "none")}
    for key, system in OPEN_LOOP_SYSTEMS:
        runs = workload.get(key, [])
        marker, line = styles[key]
        rates = [run["rate_events_per_s"] for run in runs]
        for figure, label in (
            ("latency_p50_ms", "p50"),
            ("latency_p99_ms", "p99"),
            ("latency_p999_ms", "p99.9"),
        ):
            name = system.split(" (")[0]
            values = [run[figure] for run in runs]
            axis.plot(rates, values, marker=marker, linestyle=line, label=f"{name} {label}")
    axis.set_yscale("log")
    axis.set_xlabel("open-loop rate, events/s")
    axis.set_ylabel("event to durable, ms (log scale)")
    axis.set_title("Latency at fixed rates (open loop)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
