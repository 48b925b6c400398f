"""A service's /metrics text with a sample in every family, for promtool to lint:

    python -m tests.deploy.exposition ingest|scoring|alerts|console

Imports the service's app module, so that the process holds the metrics the service
exposes and no others, and gives every labelled metric one child: promtool lints only
families that have samples, and a labelled metric has none until it is first used.
"""

from __future__ import annotations

import importlib
import sys

from prometheus_client import Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.metrics import MetricWrapperBase

APPS = {
    "ingest": "services.ingest.app",
    "scoring": "services.scoring.app",
    "alerts": "services.alerts.app",
    "console": "services.console.app",
}


def _sample(metric: MetricWrapperBase) -> None:
    # prometheus-client has no public accessor for a metric's label names.
    names = metric._labelnames
    child = metric.labels(*(["sample"] * len(names))) if names else metric
    if isinstance(child, Counter):
        child.inc()
    elif isinstance(child, Gauge):
        child.set(1)
    elif isinstance(child, Histogram | Summary):
        child.observe(0.1)
    else:
        raise TypeError(f"no sample for {type(metric).__name__} metrics: add one here")


def sampled_exposition(service: str) -> bytes:
    importlib.import_module(APPS[service])
    metrics = {
        id(value): value
        for module in list(sys.modules.values())
        if module is not None and module.__name__.startswith(("shared.", "services."))
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
    }
    for metric in metrics.values():
        _sample(metric)
    return generate_latest()


if __name__ == "__main__":
    sys.stdout.buffer.write(sampled_exposition(sys.argv[1]))
