"""Schemathesis checks and hooks of the API fuzz suite (loaded by ``st`` through
SCHEMATHESIS_HOOKS).

``VITALS_FUZZ_KEYED`` says whether the run sends valid credentials: without them,
every operation that needs a key must answer 401 whatever the request holds.
``VITALS_FUZZ_KNOWN_IDS`` (JSON, path parameter -> id) names items that exist: half
the generated requests address one of them instead of a random id, so that they
reach past the 404.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.sources.segment.api import SegmentError
from shared.errors import Problem

# Operations that answer errors in a shape of their own, documented as such.
REPORTS = {"/healthz", "/readyz"}  # LivenessReport, ReadinessReport
SEGMENT_PATHS = {"/v1/track", "/v1/identify", "/v1/group", "/v1/page", "/v1/screen", "/v1/batch"}
# Operations open without a key: operations, and Stripe (signed instead).
OPEN = REPORTS | {"/metrics", "/v1/stripe/webhook"}


@schemathesis.check
def error_bodies_are_problems(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every answer of 400 or more is a Problem: Segment's shape on Segment's routes, but
    not for what is refused before a route is found (a method the path does not have)."""
    path = case.operation.path
    if response.status_code < 400 or path in REPORTS:
        return None
    routed = case.method.upper() == case.operation.method.upper()
    model = SegmentError if path in SEGMENT_PATHS and routed else Problem
    try:
        model.model_validate_json(response.content)
    except ValidationError as exc:
        message = f"{response.status_code} is not a {model.__name__}: {response.text[:300]}"
        raise AssertionError(message) from exc
    return True


@schemathesis.check
def no_key_is_refused_first(ctx: Any, response: Any, case: Any) -> bool | None:
    """Without a key, an operation that needs one answers 401 before looking at
    anything else of the request (a method the path does not have is a 405 first)."""
    if os.environ.get("VITALS_FUZZ_KEYED") != "0" or case.operation.path in OPEN:
        return None
    if case.method.upper() != case.operation.method.upper():
        return None
    if response.status_code != 401:
        message = f"without a key: {response.status_code} instead of 401: {response.text[:300]}"
        raise AssertionError(message)
    return True


@schemathesis.hook
def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
    known: dict[str, str] = json.loads(os.environ.get("VITALS_FUZZ_KNOWN_IDS", "{}"))
    if not path_parameters or not known.keys() & path_parameters.keys():
        return st.just(path_parameters)
    existing = {**path_parameters, **{k: v for k, v in known.items() if k in path_parameters}}
    return st.sampled_from([path_parameters, existing])
