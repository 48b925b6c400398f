"""API keys on the intake routes, checked before any record is read.

Keys come from ``Authorization`` (Bearer, or Basic with the key as username, the
way Segment's libraries send their write key) or ``X-API-Key``; Segment routes also
take ``writeKey`` in the body. A refused request is counted, never dead-lettered
(see docs/decisions/0010), and the key is never logged.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from services.ingest import metrics
from services.ingest.http_intake import Refused, RequestRefused
from shared.auth import ApiKey, AuthFailure, KeyRing, Scope, token_from_headers


def check_key(keyring: KeyRing, token: str | None) -> ApiKey | None:
    """The key, if it may ingest now; raise ``AuthFailure`` (counted) otherwise."""
    try:
        return keyring.check(token, Scope.ingest)
    except AuthFailure as failure:
        metrics.REQUESTS_REJECTED.labels(failure.error).inc()
        raise


async def require_ingest_key(request: Request) -> ApiKey | None:
    """FastAPI dependency: the request's key may ingest (None when auth is off)."""
    keyring: KeyRing = request.app.state.keyring
    return check_key(keyring, token_from_headers(request))


def refused(failure: AuthFailure) -> Refused:
    return Refused(failure.status, failure.error, failure.message, headers=failure.headers)


class SegmentAccess:
    """Segment sends its write key as Basic username, or as ``writeKey`` in the body."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def from_headers(self, request: Request) -> bool:
        """Check a key sent in the headers; False when the body must supply it.

        Raises ``AuthFailure`` for a key that is wrong, lacks the scope or is over its rate.
        """
        token = token_from_headers(request)
        if token is None and self._keyring.enabled:
            return False
        check_key(self._keyring, token)
        return True

    def from_body(self, body: bytes) -> None:
        """Check ``writeKey`` of a body; raise ``RequestRefused`` in Segment's terms."""
        try:
            check_key(self._keyring, write_key_in(body))
        except AuthFailure as failure:
            raise RequestRefused(refused(failure)) from None


def write_key_in(body: bytes) -> str | None:
    """``writeKey`` of a JSON body, if it has one; a body that is not JSON has none."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = document.get("writeKey") if isinstance(document, dict) else None
    return key if isinstance(key, str) and key else None
