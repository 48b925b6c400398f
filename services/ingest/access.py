"""API keys on the intake routes, checked before any record is read.

Keys come from ``Authorization`` (Bearer, or Basic with the key as username, the
way Segment's libraries send their write key) or ``X-API-Key``; Segment routes also
take ``writeKey`` in the body. A refused request is counted, never dead-lettered
(see docs/decisions/0010), and the key is never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from fastapi import Request

from services.ingest import metrics
from services.ingest.domain import BodyRejected
from services.ingest.http_intake import Refused
from shared.auth import (
    ApiKey,
    AuthFailure,
    KeyRing,
    Scope,
    client_address,
    gate,
    token_from_headers,
)


def check_key(request: Request, token: str | None) -> ApiKey | None:
    """The key, if it may ingest now; raise ``AuthFailure`` (counted) otherwise."""
    keyring: KeyRing = request.app.state.keyring
    try:
        return keyring.check(token, Scope.ingest, client_address(request))
    except AuthFailure as failure:
        metrics.REQUESTS_REJECTED.labels(failure.error).inc()
        raise


async def _ingest_key(request: Request) -> ApiKey | None:
    return check_key(request, token_from_headers(request))


require_ingest_key = gate(_ingest_key)
"""FastAPI dependency: the request's key may ingest (None when auth is off)."""


def refused(failure: AuthFailure) -> Refused:
    return Refused(failure.status, failure.error, failure.message, headers=failure.headers)


async def segment_sender(
    request: Request, read_body: Callable[[], Awaitable[bytes]]
) -> bytes | None:
    """Check the key of a Segment call before anything else about it; raise
    ``AuthFailure`` when it is missing, wrong, lacks the scope or is over its rate.

    Segment sends its write key as Basic username, or as ``writeKey`` in the body:
    then the body is read (``read_body``, within its limits) and returned, and a body
    that cannot be read or is not JSON has no key (decision 0013).
    """
    token = token_from_headers(request)
    keyring: KeyRing = request.app.state.keyring
    if token is not None or not keyring.enabled:
        check_key(request, token)
        return None
    try:
        body = await read_body()
    except BodyRejected:
        body = b""  # too large, or not JSON: no key to find, so refused as missing
    check_key(request, write_key_in(body))
    return body


def write_key_in(body: bytes) -> str | None:
    """``writeKey`` of a JSON body, if it has one; a body that is not JSON has none."""
    try:
        document: object = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = document.get("writeKey") if isinstance(document, dict) else None
    return key if isinstance(key, str) and key else None
