"""The metric names PromQL expressions use, and the ones the services define."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]

METRICS_MODULES = (
    "shared.metrics",
    "services.ingest.metrics",
    "services.scoring.metrics",
    "services.alerts.metrics",
    "services.console.metrics",
)
# The series a family of each type is exposed as (no *_created: the services turn
# them off).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# A name not followed by "(" (a function or an aggregation), not part of a number
# (1e3) or a duration (5m), and not a Grafana variable ($job, $__rate_interval).
_NAME = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects."""
    for pattern in (_STRING, _MATCHERS, _RANGE, _LABEL_LIST):
        expr = pattern.sub(" ", expr)
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def defined_series() -> frozenset[str]:
    """Every series name the services expose as vitals_* or process_*, plus ``up``,
    which Prometheus records for each scrape."""
    for module in METRICS_MODULES:
        importlib.import_module(module)
    names = {"up"}
    for family in REGISTRY.collect():
        if family.name.startswith(("vitals_", "process_")):
            names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return frozenset(names)
