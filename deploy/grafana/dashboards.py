"""Vitals' Grafana dashboards, generated from code with grafana-foundation-sdk.

    python deploy/grafana/dashboards.py --out deploy/grafana/dashboards

writes vitals-overview.json (the pipeline end to end) and one dashboard per service,
vitals-ingest.json, vitals-scoring.json and vitals-alerts.json, each with the
service's process CPU and memory. Import them into Grafana or provision them from that
folder; each asks for its Prometheus data source in the `datasource` variable.

The JSON is committed, and the output is deterministic (sorted keys, fixed uids and
panel ids): edit this file, regenerate, commit both. tests/deploy/test_dashboards.py
checks that the files are this script's output and that every query names only
metrics the services define.

Scrape jobs are vitals-ingest, vitals-scoring, vitals-alerts and vitals-console, as in
deploy/prometheus/rules/vitals.rules.yml.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cog_builder
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models import dashboard as dashboard_models

JOBS = {"ingest": "vitals-ingest", "scoring": "vitals-scoring", "alerts": "vitals-alerts"}
CONSOLE_JOB = "vitals-console"
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.9, 0.99)
# scoring's VITALS_SCORING_SWEEP_INTERVAL_S default; VitalsSweepOverdue fires at twice it.
SWEEP_INTERVAL_S = 3600.0
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")

Target = tuple[str, str]
"""A query and its legend."""


@dataclass(frozen=True)
class Scope:
    """The label matchers every query of one dashboard starts with."""

    matchers: str

    def __call__(self, metric: str, *more: str) -> str:
        """``metric`` selected within the scope, with ``more`` matchers."""
        return f"{metric}{{{', '.join((self.matchers, *more))}}}"

    def rate(self, metric: str, *more: str) -> str:
        """The per-second rate of the counter ``metric`` within the scope."""
        return f"rate({self(metric, *more)}[{RATE}])"


# --- panels ------------------------------------------------------------------------


def _queries(targets: Sequence[Target]) -> list[cog_builder.Builder[cog_variants.Dataquery]]:
    return [
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + number))
        for number, (expr, legend) in enumerate(targets)
    ]


def graph(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Target],
    *,
    width: int = 12,
    height: int = 8,
    thresholds: Sequence[tuple[float, str]] = (),
) -> timeseries.Panel:
    """A time series panel; ``thresholds`` are drawn as dashed lines (value, colour)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .targets(_queries(targets))
    )
    if thresholds:
        steps = [dashboard_models.Threshold(value=None, color="green")]
        steps += [
            dashboard_models.Threshold(value=value, color=color) for value, color in thresholds
        ]
        panel = panel.thresholds(
            dashboard_builders.ThresholdsConfig()
            .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
            .steps(steps)
        ).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    return panel


def single_stat(
    title: str, description: str, unit: str, targets: Sequence[Target], *, width: int = 6
) -> stat.Panel:
    """A stat panel of the latest value of each series."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .targets(_queries(targets))
    )


def quantiles(bucket: str, by: str, legend: str) -> list[Target]:
    """p50, p90 and p99 of a histogram's ``bucket`` series, per ``by`` labels."""
    group = f"{by}, le" if by else "le"
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({bucket}[{RATE}])))",
            f"{legend} p{round(q * 100)}",
        )
        for q in QUANTILES
    ]


# --- panels shared by the overview and the service dashboards ---------------------


def up_stat(scope: Scope, by: str, *, width: int = 6) -> stat.Panel:
    return single_stat(
        "Targets up",
        "Scrape targets answering /metrics. A target down for 5 minutes: VitalsServiceDown.",
        units.Short,
        [(f"sum by ({by}) ({scope('up')})", f"{{{{{by}}}}}")],
        width=width,
    )


def failing_checks(scope: Scope, *, width: int = 12) -> timeseries.Panel:
    return graph(
        "Failing readiness checks",
        "The /readyz checks that fail, per process: while one does, /readyz answers 503 "
        "and the process takes no traffic. Failing for 5 minutes: VitalsServiceNotReady.",
        units.Short,
        [
            (
                f"count by (job, instance, check) ({scope('vitals_readiness_check_ok')} == 0)",
                "{{job}} {{instance}} {{check}}",
            )
        ],
        width=width,
    )


def events_in(scope: Scope) -> timeseries.Panel:
    return graph(
        "Events in by source and outcome",
        "Records ingest received per second, by source (native, segment, stripe, "
        "cloudevents, kafka), and what became of them: accepted (new, acknowledged by "
        "the broker), duplicate (event_id already published) or rejected (dead-lettered).",
        units.OpsPerSecond,
        [
            (
                f"sum by (source) ({scope.rate('vitals_ingest_events_received_total')})",
                "{{source}} received",
            ),
            (
                f"sum by (source) ({scope.rate('vitals_ingest_events_accepted_total')})",
                "{{source}} accepted",
            ),
            (
                f"sum by (source) ({scope.rate('vitals_ingest_dedupe_hits_total')})",
                "{{source}} duplicate",
            ),
            (
                f"sum by (source) ({scope.rate('vitals_ingest_events_rejected_total')})",
                "{{source}} rejected",
            ),
        ],
    )


def rejects(scope: Scope) -> timeseries.Panel:
    return graph(
        "Rejects by reason",
        "Records rejected per second by reason (each is dead-lettered), and requests "
        "refused before any record was read (unauthenticated, rate limited, broker or "
        "database unavailable).",
        units.OpsPerSecond,
        [
            (
                f"sum by (reason) ({scope.rate('vitals_ingest_events_rejected_total')})",
                "{{reason}}",
            ),
            (
                f"sum by (reason) ({scope.rate('vitals_ingest_requests_rejected_total')})",
                "request refused: {{reason}}",
            ),
        ],
    )


def dead_letters(scope: Scope, services: Sequence[str], *, width: int = 12) -> timeseries.Panel:
    counters = {
        "ingest": "vitals_ingest_dead_letters_total",
        "scoring": "vitals_scoring_dead_letters_published_total",
        "alerts": "vitals_alerts_dead_letters_published_total",
    }
    return graph(
        "Dead letters by reason",
        "Dead letters sent to the DLQ topic per second. A jump to five times the day's "
        "rate: VitalsDeadLetterSpike.",
        units.OpsPerSecond,
        [
            (
                f"sum by (reason) ({scope.rate(counters[service])})",
                f"{service} {{{{reason}}}}",
            )
            for service in services
        ],
        width=width,
    )


# The raw-topic intake's series among the consumers' lag.
RAW_LAG = 'consumer="ingest-raw"'


def consumer_lag(scope: Scope, *matchers: str) -> timeseries.Panel:
    # Every replica reports every partition of its group: max, not sum, per partition.
    targets = [
        (
            "max by (consumer, topic, partition) "
            f"({scope('vitals_consumer_lag_records', *matchers)})",
            "{{consumer}} {{topic}}/{{partition}}",
        )
    ]
    return graph(
        "Consumer lag by group and partition",
        "Records behind the end of each partition, from the positions each consumer "
        "stores. Measured beside the consumer, so it rises while a consumer is stopped. "
        "Growing for 15 minutes: VitalsConsumerLagGrowing.",
        units.Short,
        targets,
    )


def batch_duration(scope: Scope, *matchers: str) -> timeseries.Panel:
    return graph(
        "Batch duration",
        "Time to apply and flush one batch in one database transaction, by consumer.",
        units.Seconds,
        quantiles(
            scope("vitals_consumer_batch_seconds_bucket", *matchers), "consumer", "{{consumer}}"
        ),
    )


def consumer_records(scope: Scope, *matchers: str) -> timeseries.Panel:
    return graph(
        "Records applied and dead-lettered",
        "Records applied and flushed per second, and records whose handling failed and "
        "were dead-lettered so that their partition moves on.",
        units.OpsPerSecond,
        [
            (
                f"sum by (consumer) ({scope.rate('vitals_consumer_records_total', *matchers)})",
                "{{consumer}} applied",
            ),
            (
                "sum by (consumer) "
                f"({scope.rate('vitals_consumer_records_rejected_total', *matchers)})",
                "{{consumer}} dead-lettered",
            ),
        ],
    )


def consumer_restarts(scope: Scope, *matchers: str) -> timeseries.Panel:
    return graph(
        "Consumer restarts",
        "Restarts of the consume loop after a failure (broker or database away), per "
        "replica. More than 3 in 10 minutes for 5 minutes: VitalsConsumerRestarting.",
        units.Short,
        [
            (
                "sum by (consumer, instance) "
                f"(increase({scope('vitals_consumer_restarts_total', *matchers)}[{RATE}]))",
                "{{consumer}} {{instance}}",
            )
        ],
    )


def scoring_events(scope: Scope) -> timeseries.Panel:
    return graph(
        "Events scored by outcome",
        "Events per second folded into account state, skipped as seen before, too late "
        "(past the lateness bound: DLQ) or unreadable (DLQ).",
        units.OpsPerSecond,
        [
            (f"sum({scope.rate(metric)})", label)
            for metric, label in (
                ("vitals_scoring_events_applied_total", "applied"),
                ("vitals_scoring_events_duplicate_total", "duplicate"),
                ("vitals_scoring_events_too_late_total", "too late"),
                ("vitals_scoring_events_unreadable_total", "unreadable"),
            )
        ],
    )


def score_changes(scope: Scope) -> timeseries.Panel:
    return graph(
        "Score changes per second by band",
        "Material score changes recorded, by the band the account moved into.",
        units.OpsPerSecond,
        [
            (
                f"sum by (band) ({scope.rate('vitals_scoring_score_changes_total')})",
                "{{band}}",
            )
        ],
    )


def sweep_duration(scope: Scope) -> timeseries.Panel:
    # A sweep finishes about once an interval per replica: averaged over two intervals
    # so that every point covers at least one.
    window = f"{round(2 * SWEEP_INTERVAL_S)}s"
    return graph(
        "Sweep duration",
        "Wall time of one complete sweep over a replica's accounts, averaged over the "
        "sweeps that finished in the last two sweep intervals.",
        units.Seconds,
        [
            (
                "sum by (instance) "
                f"(increase({scope('vitals_scoring_sweep_seconds_sum')}[{window}]))"
                " / sum by (instance) "
                f"(increase({scope('vitals_scoring_sweep_seconds_count')}[{window}]))",
                "{{instance}}",
            )
        ],
    )


def sweep_age(scope: Scope) -> timeseries.Panel:
    return graph(
        "Time since the last sweep",
        "Time since each replica last finished a sweep; no line before its first one. "
        "Past twice VITALS_SCORING_SWEEP_INTERVAL_S (3600 s by default): "
        "VitalsSweepOverdue.",
        units.Seconds,
        [
            (
                "time() - max by (instance) "
                f"({scope('vitals_scoring_sweep_last_completed_timestamp_seconds')} > 0)",
                "{{instance}}",
            ),
            (
                f"2 * max by (instance) ({scope('vitals_scoring_sweep_interval_seconds')})",
                "overdue from ({{instance}})",
            ),
        ],
        thresholds=[(SWEEP_INTERVAL_S * 1.5, "orange"), (SWEEP_INTERVAL_S * 2, "red")],
    )


def alerts_opened(scope: Scope) -> timeseries.Panel:
    return graph(
        "Alerts opened and resolved",
        "Alerts opened and resolved per minute, by rule.",
        units.OpsPerMinute,
        [
            (
                f"60 * sum by (rule) ({scope.rate('vitals_alerts_opened_total')})",
                "{{rule}} opened",
            ),
            (
                f"60 * sum by (rule) ({scope.rate('vitals_alerts_resolved_total')})",
                "{{rule}} resolved",
            ),
        ],
    )


def deliveries(scope: Scope) -> timeseries.Panel:
    return graph(
        "Deliveries by outcome",
        "Delivery attempts per second: delivered, retry (to be attempted again), dead "
        "(no attempt left, or refused) and gone (the receiver answered 410: channel "
        "disabled). Dead or gone: VitalsDeliveriesDying.",
        units.OpsPerSecond,
        [
            (
                f"sum by (outcome) ({scope.rate('vitals_alerts_deliveries_total')})",
                "{{outcome}}",
            )
        ],
    )


def delivery_latency(scope: Scope) -> timeseries.Panel:
    return graph(
        "Delivery latency",
        "From the score message on the topic to its notice delivered, and the time one "
        "delivery attempt took.",
        units.Seconds,
        [
            *quantiles(
                scope("vitals_alerts_score_to_delivery_seconds_bucket"), "", "score to delivered"
            ),
            (
                "histogram_quantile(0.99, sum by (le) "
                f"({scope.rate('vitals_alerts_delivery_seconds_bucket')}))",
                "one attempt p99",
            ),
        ],
    )


def dead_deliveries(scope: Scope) -> timeseries.Panel:
    # The outbox gauges count the database's rows: every dispatcher reports the same.
    return graph(
        "Dead deliveries",
        "Deliveries marked dead, in the database: their notices are not sent unless "
        "retried (POST /v1/deliveries/{id}/retry).",
        units.Short,
        [(f"max({scope('vitals_alerts_deliveries_dead')})", "dead")],
    )


def outbox_pending(scope: Scope) -> timeseries.Panel:
    return graph(
        "Outbox backlog",
        "Deliveries waiting in the outbox (pending), in the database.",
        units.Short,
        [(f"max({scope('vitals_alerts_outbox_pending')})", "pending")],
    )


def outbox_age(scope: Scope) -> timeseries.Panel:
    return graph(
        "Oldest pending delivery",
        "Age of the oldest pending delivery; 0 when none waits. Over 10 minutes for 5 "
        "minutes: VitalsDeliveriesBackingUp.",
        units.Seconds,
        [(f"max({scope('vitals_alerts_outbox_oldest_age_seconds')})", "oldest pending")],
        thresholds=[(600, "red")],
    )


def publisher_backlog(scope: Scope) -> timeseries.Panel:
    return graph(
        "Publisher backlog",
        "Rows waiting in each outbox to reach their topic (score changes, alert events, "
        "dead letters), and records too large to send per second (dead-lettered "
        "as unpublishable, not retried).",
        units.Short,
        [
            (f"max by (outbox) ({scope('vitals_publisher_pending_rows')})", "{{outbox}}"),
            (
                f"sum by (outbox) ({scope.rate('vitals_publisher_records_refused_total')})",
                "{{outbox}} refused/s",
            ),
        ],
    )


def publisher_age(scope: Scope) -> timeseries.Panel:
    return graph(
        "Oldest unpublished row",
        "How long the oldest row of each outbox has waited to reach its topic; 0 when none "
        "waits. Over 5 minutes for 5 minutes: VitalsPublisherStuck.",
        units.Seconds,
        [
            (
                f"max by (outbox) ({scope('vitals_publisher_oldest_pending_age_seconds')})",
                "{{outbox}}",
            )
        ],
        thresholds=[(300, "red")],
    )


def http_panels(scope: Scope, what: str) -> list[timeseries.Panel | stat.Panel]:
    """Requests by route, their p99 latency and 5xx answers, and the version running, from
    shared.metrics' vitals_http_* and vitals_build_info (every service and the console)."""
    requests = "vitals_http_requests_total"
    server_error = 'code=~"5.."'
    return [
        graph(
            "Requests by route",
            f"{what} answered per second, by route template and status code.",
            units.RequestsPerSecond,
            [(f"sum by (route, code) ({scope.rate(requests)})", "{{route}} {{code}}")],
            width=9,
        ),
        graph(
            "Request latency (p99)",
            f"Time to answer {what.lower()}, by route template (all status codes).",
            units.Seconds,
            [
                (
                    "histogram_quantile(0.99, sum by (route, le) "
                    f"({scope.rate('vitals_http_request_duration_seconds_bucket')}))",
                    "{{route}}",
                )
            ],
            width=9,
        ),
        single_stat(
            "Version",
            "The Vitals version each process runs (vitals_build_info).",
            units.Short,
            [(f"count by (version) ({scope('vitals_build_info')})", "{{version}}")],
        ),
        graph(
            "Server errors",
            f"Share of {what.lower()} answered 5xx, by route template.",
            units.PercentUnit,
            [
                (
                    f"sum by (route) ({scope.rate(requests, server_error)}) "
                    f"/ sum by (route) ({scope.rate(requests)})",
                    "{{route}}",
                )
            ],
            width=24,
        ),
    ]


def process_panels(scope: Scope) -> list[timeseries.Panel]:
    # Not reported by processes serving with --workers N (prometheus-client's
    # multiprocess mode has no process collector).
    return [
        graph(
            "CPU",
            "CPU time used per second, per process (100% is one core).",
            units.PercentUnit,
            [(f"{scope.rate('process_cpu_seconds_total')}", "{{instance}}")],
            width=8,
        ),
        graph(
            "Memory",
            "Resident memory per process.",
            units.BytesIEC,
            [(scope("process_resident_memory_bytes"), "{{instance}}")],
            width=8,
        ),
        graph(
            "Open file descriptors",
            "File descriptors open per process (sockets included), and the limit.",
            units.Short,
            [
                (scope("process_open_fds"), "{{instance}}"),
                (f"min({scope('process_max_fds')})", "limit"),
            ],
            width=8,
        ),
    ]


# --- dashboards -------------------------------------------------------------------


def _variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dashboard_models.VariableOption(selected=True, text="All", value="$__all"))
    )


def _dashboard(uid: str, title: str, description: str) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["vitals"])
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard_builders.DashboardLink("Vitals")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags(["vitals"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
        .with_variable(
            dashboard_builders.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
        )
    )


def _rows(
    board: dashboard_builders.Dashboard,
    rows: Sequence[tuple[str, Sequence[timeseries.Panel | stat.Panel]]],
) -> dashboard_models.Dashboard:
    for title, panels in rows:
        board = board.with_row(dashboard_builders.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    model = board.build()
    # Fixed ids keep the output stable and links to a panel (viewPanel=N) valid.
    for number, built in enumerate(model.panels or [], start=1):
        built.id_val = number
    return model


def overview() -> dashboard_models.Dashboard:
    scope = Scope('job=~"$job"')
    board = _dashboard(
        "vitals-overview",
        "Vitals overview",
        "The pipeline end to end: events in, consumers, scoring, alerts and deliveries.",
    ).with_variable(_variable("job", "Service", 'label_values(up{job=~"vitals-.*"}, job)'))
    return _rows(
        board,
        [
            ("Services", [up_stat(scope, "job", width=12), failing_checks(scope)]),
            (
                "Intake and dead letters",
                [events_in(scope), rejects(scope), dead_letters(scope, list(JOBS), width=24)],
            ),
            (
                "Consumers",
                [
                    consumer_lag(scope),
                    batch_duration(scope),
                    consumer_records(scope),
                    consumer_restarts(scope),
                    publisher_backlog(scope),
                    publisher_age(scope),
                ],
            ),
            (
                "Scoring",
                [
                    scoring_events(scope),
                    score_changes(scope),
                    sweep_age(scope),
                    sweep_duration(scope),
                ],
            ),
            (
                "Alerts and deliveries",
                [
                    alerts_opened(scope),
                    deliveries(scope),
                    delivery_latency(scope),
                    dead_deliveries(scope),
                    outbox_pending(scope),
                    outbox_age(scope),
                ],
            ),
        ],
    )


def _service_dashboard(
    service: str, description: str
) -> tuple[Scope, dashboard_builders.Dashboard]:
    job = JOBS[service]
    board = _dashboard(job, f"Vitals {service}", description).with_variable(
        _variable("instance", "Instance", f'label_values(up{{job="{job}"}}, instance)')
    )
    return Scope(f'job="{job}", instance=~"$instance"'), board


def ingest() -> dashboard_models.Dashboard:
    scope, board = _service_dashboard(
        "ingest", "HTTP and raw-topic intake: what came in, what was refused and why."
    )
    return _rows(
        board,
        [
            (
                "Service",
                [
                    up_stat(scope, "instance"),
                    single_stat(
                        "Raw-topic intake",
                        "Whether each replica's raw-topic consumer runs. Off on replicas "
                        "without VITALS_INGEST_RAW_TOPICS; otherwise /readyz raw_intake "
                        "says why not. Off for 5 minutes: VitalsRawIntakeStopped.",
                        units.BoolOnOff,
                        [(scope("vitals_ingest_raw_intake_up"), "{{instance}}")],
                        width=18,
                    ),
                ],
            ),
            (
                "Intake",
                [
                    events_in(scope),
                    rejects(scope),
                    graph(
                        "Time since each source's last event",
                        "How long since ingest last accepted a new event of each source (any "
                        "replica). Above its threshold for 10 minutes: VitalsSourceSilent.",
                        units.Seconds,
                        [
                            (
                                "time() - max by (source) "
                                f"({scope('vitals_ingest_last_accepted_timestamp_seconds')})",
                                "{{source}}",
                            )
                        ],
                        width=24,
                    ),
                    graph(
                        "Broker acknowledgement",
                        "From handing records to the producer until the broker acknowledged "
                        "all of them (acks=all).",
                        units.Seconds,
                        quantiles(scope("vitals_ingest_produce_seconds_bucket"), "", "produce"),
                    ),
                    dead_letters(scope, ["ingest"]),
                    graph(
                        "Segment calls waiting for their group call",
                        "Calls held until their user's group call, released with it, or "
                        "expired (dead-lettered as unknown_account), per second.",
                        units.OpsPerSecond,
                        [
                            (
                                "sum by (outcome) "
                                f"({scope.rate('vitals_ingest_segment_waiting_calls_total')})",
                                "{{outcome}}",
                            )
                        ],
                    ),
                ],
            ),
            (
                "Raw-topic intake",
                [
                    graph(
                        "Raw-topic lag",
                        "Records on each raw topic partition not yet committed by the raw "
                        "intake's group.",
                        units.Short,
                        [
                            (
                                "max by (topic, partition) "
                                f"({scope('vitals_consumer_lag_records', RAW_LAG)})",
                                "{{topic}}/{{partition}}",
                            )
                        ],
                        width=24,
                    ),
                ],
            ),
            ("HTTP API", http_panels(scope, "Requests")),
            ("Process", process_panels(scope)),
        ],
    )


def scoring() -> dashboard_models.Dashboard:
    scope, board = _service_dashboard(
        "scoring", "Events folded into account state, score changes, and the hourly sweep."
    )
    consumer = 'consumer="scoring"'
    return _rows(
        board,
        [
            (
                "Service",
                [
                    up_stat(scope, "instance"),
                    single_stat(
                        "Assigned partitions",
                        "Partitions of the events topic each replica owns; one without "
                        "any scores and sweeps nothing.",
                        units.Short,
                        [
                            (
                                scope("vitals_consumer_assigned_partitions", consumer),
                                "{{instance}}",
                            )
                        ],
                        width=9,
                    ),
                    single_stat(
                        "States cached",
                        "Account states held in memory between batches "
                        "(VITALS_SCORING_STATE_CACHE_ACCOUNTS).",
                        units.Short,
                        [(scope("vitals_scoring_states_cached"), "{{instance}}")],
                        width=9,
                    ),
                ],
            ),
            (
                "Consumer",
                [
                    consumer_lag(scope, consumer),
                    batch_duration(scope, consumer),
                    consumer_records(scope, consumer),
                    consumer_restarts(scope, consumer),
                ],
            ),
            (
                "Events and scores",
                [
                    scoring_events(scope),
                    score_changes(scope),
                    graph(
                        "Score messages published",
                        "Score changes sent to the scores topic per second.",
                        units.OpsPerSecond,
                        [
                            (
                                f"sum({scope.rate('vitals_scoring_score_messages_published_total')})",
                                "published",
                            )
                        ],
                    ),
                    dead_letters(scope, ["scoring"]),
                    publisher_backlog(scope),
                    publisher_age(scope),
                ],
            ),
            (
                "Sweep",
                [
                    sweep_age(scope),
                    sweep_duration(scope),
                    graph(
                        "Accounts re-scored by the sweep",
                        "Accounts re-scored per second by the periodic sweep, and CSM "
                        "overrides that reached their expiry per second.",
                        units.OpsPerSecond,
                        [
                            (
                                f"sum({scope.rate('vitals_scoring_sweep_accounts_total')})",
                                "accounts",
                            ),
                            (
                                f"sum({scope.rate('vitals_scoring_overrides_lapsed_total')})",
                                "overrides lapsed",
                            ),
                        ],
                    ),
                    graph(
                        "States loaded from the database",
                        "Account states read back because they were not in memory; close "
                        "to the accounts touched means the cache is too small.",
                        units.OpsPerSecond,
                        [
                            (
                                "sum by (instance) "
                                f"({scope.rate('vitals_scoring_states_loaded_total')})",
                                "{{instance}}",
                            )
                        ],
                    ),
                ],
            ),
            ("HTTP API", http_panels(scope, "Requests")),
            ("Process", process_panels(scope)),
        ],
    )


def alerts() -> dashboard_models.Dashboard:
    scope, board = _service_dashboard(
        "alerts", "Alert rules over score changes, and the delivery of notices from the outbox."
    )
    consumer = 'consumer="alerts"'
    return _rows(
        board,
        [
            ("Service", [up_stat(scope, "instance", width=24)]),
            (
                "Consumer",
                [
                    consumer_lag(scope, consumer),
                    batch_duration(scope, consumer),
                    consumer_records(scope, consumer),
                    consumer_restarts(scope, consumer),
                ],
            ),
            (
                "Alerts",
                [
                    alerts_opened(scope),
                    graph(
                        "Alert transitions",
                        "Alert transitions per minute (opened, escalated, reminded, "
                        "resolved), notified or muted.",
                        units.OpsPerMinute,
                        [
                            (
                                "60 * sum by (transition) "
                                f"({scope.rate('vitals_alerts_transitions_total')})",
                                "{{transition}}",
                            )
                        ],
                    ),
                    graph(
                        "Score messages skipped",
                        "Score messages per second dropped as already applied (duplicate) "
                        "or not valid (unreadable: DLQ); and alert transitions published "
                        "to the alerts topic.",
                        units.OpsPerSecond,
                        [
                            (
                                f"sum({scope.rate('vitals_alerts_score_messages_duplicate_total')})",
                                "duplicate",
                            ),
                            (
                                f"sum({scope.rate('vitals_alerts_score_messages_unreadable_total')})",
                                "unreadable",
                            ),
                            (
                                f"sum({scope.rate('vitals_alerts_events_published_total')})",
                                "transitions published",
                            ),
                        ],
                    ),
                    dead_letters(scope, ["alerts"]),
                    publisher_backlog(scope),
                    publisher_age(scope),
                ],
            ),
            (
                "Deliveries",
                [
                    graph(
                        "Deliveries by channel and outcome",
                        "Delivery attempts per second. Dead or gone: VitalsDeliveriesDying.",
                        units.OpsPerSecond,
                        [
                            (
                                "sum by (channel, outcome) "
                                f"({scope.rate('vitals_alerts_deliveries_total')})",
                                "{{channel}} {{outcome}}",
                            )
                        ],
                    ),
                    graph(
                        "Score to delivered",
                        "From the score message on the topic to its notice delivered, by "
                        "channel kind.",
                        units.Seconds,
                        quantiles(
                            scope("vitals_alerts_score_to_delivery_seconds_bucket"),
                            "kind",
                            "{{kind}}",
                        ),
                    ),
                    graph(
                        "Delivery attempt duration (p99)",
                        "Time one delivery attempt took, by channel "
                        "(VITALS_ALERTS_DELIVERY_TIMEOUT_S bounds a webhook call).",
                        units.Seconds,
                        [
                            (
                                "histogram_quantile(0.99, sum by (channel, le) "
                                f"({scope.rate('vitals_alerts_delivery_seconds_bucket')}))",
                                "{{channel}}",
                            )
                        ],
                    ),
                    graph(
                        "Channels disabled",
                        "Channels disabled because their receiver answered 410 Gone; "
                        "POST /v1/channels/{id}/enable once fixed.",
                        units.Short,
                        [
                            (
                                "sum by (channel) "
                                f"(increase({scope('vitals_alerts_channels_disabled_total')}[{RATE}]))",
                                "{{channel}}",
                            )
                        ],
                    ),
                    outbox_pending(scope),
                    outbox_age(scope),
                    dead_deliveries(scope),
                ],
            ),
            ("HTTP API", http_panels(scope, "Requests")),
            ("Process", process_panels(scope)),
        ],
    )


def console() -> dashboard_models.Dashboard:
    job = CONSOLE_JOB
    board = _dashboard(
        job,
        "Vitals console",
        "The console's pages: requests, rendering, and its calls to the scoring and alerts APIs.",
    ).with_variable(_variable("instance", "Instance", f'label_values(up{{job="{job}"}}, instance)'))
    scope = Scope(f'job="{job}", instance=~"$instance"')
    calls = "vitals_console_api_call_seconds"
    return _rows(
        board,
        [
            ("Console", [up_stat(scope, "instance", width=24)]),
            ("Pages", http_panels(scope, "Page and API requests")),
            (
                "Rendering",
                [
                    graph(
                        "Page render latency (p99)",
                        "Time to render a page's template into HTML, by template (the API "
                        "calls made before it not included).",
                        units.Seconds,
                        [
                            (
                                "histogram_quantile(0.99, sum by (page, le) "
                                f"({scope.rate('vitals_console_page_render_seconds_bucket')}))",
                                "{{page}}",
                            )
                        ],
                        width=24,
                    ),
                ],
            ),
            (
                "Calls to the services",
                [
                    graph(
                        "API call latency",
                        "From sending a call to the scoring or alerts API until its answer, "
                        "by service.",
                        units.Seconds,
                        [
                            target
                            for service in ("scoring", "alerts")
                            for target in quantiles(
                                scope(f"{calls}_bucket", f'service="{service}"'), "", service
                            )
                        ],
                    ),
                    graph(
                        "API call failures",
                        "Calls per second that got no answer (reason: the error) or a 5xx "
                        "(server_error), by service. The pages show an error meanwhile.",
                        units.OpsPerSecond,
                        [
                            (
                                "sum by (service, reason) "
                                f"({scope.rate('vitals_console_api_call_errors_total')})",
                                "{{service}} {{reason}}",
                            )
                        ],
                    ),
                    graph(
                        "API calls by answer",
                        "Calls per second to each service, by status code (error: none came).",
                        units.OpsPerSecond,
                        [
                            (
                                f"sum by (service, code) ({scope.rate(calls + '_count')})",
                                "{{service}} {{code}}",
                            )
                        ],
                        width=24,
                    ),
                ],
            ),
            ("Process", process_panels(scope)),
        ],
    )


DASHBOARDS = {
    "vitals-overview.json": overview,
    "vitals-ingest.json": ingest,
    "vitals-scoring.json": scoring,
    "vitals-alerts.json": alerts,
    "vitals-console.json": console,
}


def render() -> dict[str, str]:
    """Every dashboard's file name and JSON text."""
    return {
        name: json.dumps(make(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
        for name, make in DASHBOARDS.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write Vitals' Grafana dashboards as JSON.")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "dashboards",
        help="folder to write the dashboards into (default: %(default)s)",
    )
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text, encoding="utf-8")
        print(out / name)


if __name__ == "__main__":
    main()
