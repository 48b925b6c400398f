"""API keys: named, stored hashed, scoped, rate-limited per key.

A key reads ``vk_<id>_<secret>``: the recognisable prefix lets secret scanners find a
leaked key, the id finds its entry (and names it in logs) without the secret. Only
the SHA-256 of the whole key is stored, in a YAML keys file every service reads;
a key is 190 random bits, so a plain hash is as strong as a slow one here.
Several keys may be active at once, which is how a key is rotated.

A key is checked before anything else of a request (its parameters, its body): the
checks are *gates* (``gate``), which ``shared.http.GatedRoute`` runs first. Requests
without a valid key are rate-limited per client address, and a key is never taken
from a query string: URLs end up in access logs, proxies and browser histories.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
import secrets
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from shared.errors import problem_response

log = logging.getLogger(__name__)

PREFIX = "vk_"
ID_LENGTH = 8
SECRET_LENGTH = 32
ALPHABET = string.ascii_letters + string.digits
# Requests without a valid key, per client address: enough for a person trying things
# out, little for a client hammering with a wrong key or guessing one.
UNAUTHENTICATED_RATE = "60/minute"
# Query parameters that would carry a key, compared lower-case.
KEY_PARAMETERS = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "writekey", "write_key"}
)
# A key as ``generate_key`` makes it: what to look for in URLs and log lines.
KEY_PATTERN = re.compile(rf"{PREFIX}[A-Za-z0-9]{{{ID_LENGTH}}}_[A-Za-z0-9]{{{SECRET_LENGTH}}}")

T = TypeVar("T")


class Scope(StrEnum):
    ingest = "ingest"
    read = "read"
    act = "act"  # a CSM's actions: acknowledge and snooze alerts, set and lift overrides
    admin = "admin"


# Scopes that carry another's rights: admin keys set overrides since before act existed.
IMPLIED_BY = {Scope.act: frozenset({Scope.admin})}


def allows(scopes: frozenset[Scope], scope: Scope) -> bool:
    return scope in scopes or bool(scopes & IMPLIED_BY.get(scope, frozenset()))


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file and the field."""


class AuthFailure(Exception):
    """A request is refused: ``error`` is machine-readable, ``message`` is for people."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


class KeyEntry(BaseModel):
    """One key as stored in the keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    id: str = Field(pattern=rf"^[A-Za-z0-9]{{{ID_LENGTH}}}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope] = Field(min_length=1)
    rate: str | None = None
    expires_at: datetime | None = None

    @field_validator("rate")
    @classmethod
    def _rate_is_a_limit(cls, rate: str | None) -> str | None:
        if rate is not None:
            parse_rate(rate)
        return rate

    @field_validator("expires_at")
    @classmethod
    def _expiry_has_a_zone(cls, expires_at: datetime | None) -> datetime | None:
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2027-01-01T00:00:00Z")
        return expires_at


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class ApiKey:
    """The caller a request was authenticated as."""

    name: str
    id: str
    scopes: frozenset[Scope]


def parse_rate(rate: str) -> RateLimitItem:
    try:
        return parse(rate)
    except ValueError:
        message = f"{rate!r} is not a rate such as '1000/second' or '100 per minute'"
        raise ValueError(message) from None


def generate_key(name: str, scopes: set[Scope], rate: str | None = None) -> tuple[str, KeyEntry]:
    """A new key and the entry to store for it; the key is shown once, never stored."""
    key_id = _random(ID_LENGTH)
    key = f"{PREFIX}{key_id}_{_random(SECRET_LENGTH)}"
    entry = KeyEntry(name=name, id=key_id, sha256=_digest(key), scopes=frozenset(scopes), rate=rate)
    return key, entry


def entry_yaml(entry: KeyEntry) -> str:
    """``entry`` as an item of the keys file's ``keys`` list."""
    data = entry.model_dump(mode="json", exclude_none=True)
    data["scopes"] = sorted(data["scopes"])
    return yaml.safe_dump([data], sort_keys=False)


def load_keys_file(path: Path) -> KeysFile:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise KeysFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KeysFileError(f"{path}: not valid YAML: {exc}") from None
    try:
        keys_file = KeysFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise KeysFileError(f"{path}: {problems}") from None
    counts = Counter(entry.id for entry in keys_file.keys)
    duplicated = sorted(key_id for key_id, count in counts.items() if count > 1)
    if duplicated:
        raise KeysFileError(f"{path}: key id {duplicated[0]!r} appears more than once")
    return keys_file


class KeyRing:
    """The active keys and each key's rate limiter; ``enabled`` is False when auth is off."""

    def __init__(
        self,
        entries: list[KeyEntry],
        default_rate: str,
        *,
        enabled: bool = True,
        unauthenticated_rate: str = UNAUTHENTICATED_RATE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.enabled = enabled
        self._entries = {entry.id: entry for entry in entries}
        self._rates = {entry.id: parse_rate(entry.rate or default_rate) for entry in entries}
        self._unauthenticated_rate = parse_rate(unauthenticated_rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._clock = clock

    @classmethod
    def disabled(cls) -> KeyRing:
        return cls([], "1/second", enabled=False)

    @classmethod
    def from_file(
        cls,
        path: Path | None,
        default_rate: str,
        environment: str,
        *,
        unauthenticated_rate: str = UNAUTHENTICATED_RATE,
    ) -> KeyRing:
        """The keys in ``path``; without a file, auth is off outside production."""
        if path is None:
            if environment == "production":
                raise KeysFileError(
                    "VITALS_API_KEYS_FILE is unset: production needs API keys "
                    "(create one with `vitals keys create NAME --scope ingest`)"
                )
            log.warning("VITALS_API_KEYS_FILE is unset: API keys are not checked (%s)", environment)
            return cls.disabled()
        return cls(
            load_keys_file(path).keys, default_rate, unauthenticated_rate=unauthenticated_rate
        )

    def check(self, token: str | None, scope: Scope, address: str | None = None) -> ApiKey | None:
        """The key ``token`` is, if it may use ``scope`` now; None when auth is off.

        ``address`` is the client's: requests without a valid key count against its rate.
        """
        if not self.enabled:
            return None
        if not token:
            self.limit_unauthenticated(address)
            raise AuthFailure(401, "missing_api_key", "an API key is required", _challenge())
        entry = self._entry(token)
        if entry is None:
            self.limit_unauthenticated(address)
            raise AuthFailure(401, "invalid_api_key", "the API key is not valid", _challenge())
        if not allows(entry.scopes, scope):
            message = f"key {entry.name!r} does not have the {scope.value!r} scope"
            raise AuthFailure(403, "insufficient_scope", message)
        self._take(self._rates[entry.id], f"key:{entry.id}", f"key {entry.name!r}")
        return ApiKey(name=entry.name, id=entry.id, scopes=entry.scopes)

    def limit_unauthenticated(self, address: str | None) -> None:
        """Count one request without valid credentials from ``address``; raise 429
        ``AuthFailure`` once it is over its rate (before its 401 would be answered)."""
        where = address or "unknown"
        self._take(self._unauthenticated_rate, f"address:{where}", f"address {where}")

    def _entry(self, token: str) -> KeyEntry | None:
        key_id = _key_id(token)
        entry = self._entries.get(key_id) if key_id else None
        # Hash and compare even for an unknown id, so timing does not tell ids apart.
        expected = entry.sha256 if entry else "0" * 64
        if not hmac.compare_digest(_digest(token), expected) or entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._clock():
            return None
        return entry

    def _take(self, rate: RateLimitItem, bucket: str, who: str) -> None:
        if self._limiter.hit(rate, bucket):
            return
        reset_at, _ = self._limiter.get_window_stats(rate, bucket)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise AuthFailure(
            429,
            "rate_limited",
            f"{who} is over its rate of {rate}; retry after {retry_after} s",
            {"Retry-After": str(retry_after)},
        )


def token_from_headers(request: Request) -> str | None:
    """The key in ``Authorization: Bearer``, ``Authorization: Basic`` (as username,
    the way Segment sends its write key) or ``X-API-Key``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            username, _, _ = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return username or None
    return request.headers.get("x-api-key") or None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


Gate = Callable[[Request], Awaitable[object]]
_GATES: set[Gate] = set()
_GATES_PASSED = "vitals.gates_passed"


def gate(check: Callable[[Request], Awaitable[T]]) -> Callable[[Request], Awaitable[T]]:
    """Make ``check`` (raising to refuse a request) a gate: a dependency that
    ``shared.http.GatedRoute`` runs before the route reads its parameters or body.
    FastAPI calls it again while solving dependencies: it then returns the first result,
    so a request is counted against its rate once."""

    async def once(request: Request) -> T:
        passed: dict[Gate, Any] = request.scope.setdefault(_GATES_PASSED, {})
        if once not in passed:
            passed[once] = await check(request)
        result: T = passed[once]
        return result

    _GATES.add(once)
    return once


def is_gate(call: object) -> bool:
    return call in _GATES


def authenticate(scope: Scope) -> Callable[[Request], Awaitable[ApiKey | None]]:
    """A gate: the request's key, if it may use ``scope``."""

    async def check(request: Request) -> ApiKey | None:
        keyring: KeyRing = request.app.state.keyring
        key = keyring.check(token_from_headers(request), scope, client_address(request))
        request.state.api_key = key
        return key

    return gate(check)


def install_auth(app: FastAPI, keyring: KeyRing) -> None:
    """Put ``keyring`` on the app and answer AuthFailure as a Problem."""
    app.state.keyring = keyring

    async def refuse(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthFailure)
        return problem_response(exc.status, exc.error, exc.message, headers=exc.headers)

    app.add_exception_handler(AuthFailure, refuse)


def key_in_query(query_string: str) -> bool:
    """Whether a query string carries what looks like an API key."""
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name.lower() in KEY_PARAMETERS or KEY_PATTERN.search(name + value):
            return True
    return False


def redact_keys(text: str) -> str:
    """``text`` (a logged request line) with any key in its query string hidden."""
    path, sep, query = text.partition("?")
    if not sep:
        return KEY_PATTERN.sub("(redacted)", text)
    pairs = [pair.partition("=") for pair in query.split("&")]
    kept = [
        f"{name}{eq}(redacted)" if key_in_query(f"{name}={value}") else f"{name}{eq}{value}"
        for name, eq, value in pairs
    ]
    return KEY_PATTERN.sub("(redacted)", f"{path}?{'&'.join(kept)}")


class QueryKeyRefusal:
    """Refuses, 400, any request with an API key in its query string, on every path:
    the sender must learn to use a header (and that the key should be replaced)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        if scope["type"] != "http" or not query or not key_in_query(query):
            await self.app(scope, receive, send)
            return
        message = (
            "API keys are not accepted in the URL, which ends up in logs: send the key in "
            "the Authorization or X-API-Key header, and replace this one"
        )
        await problem_response(400, "api_key_in_query", message)(scope, receive, send)


class AccessLogRedaction(logging.Filter):
    """Hides keys in the query strings uvicorn's access log writes (its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_keys(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


ACCESS_LOG_REDACTION = AccessLogRedaction()


def redact_access_log() -> None:
    logging.getLogger("uvicorn.access").addFilter(ACCESS_LOG_REDACTION)


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="vitals"'}


def _key_id(token: str) -> str | None:
    if not token.startswith(PREFIX):
        return None
    key_id, sep, _ = token[len(PREFIX) :].partition("_")
    return key_id if sep and len(key_id) == ID_LENGTH else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))
