"""What the console sends with every answer, and what it refuses to take or to log.

Every answer carries a Content-Security-Policy that lets pages run the console's own
scripts and styles only (none inline: base.html turns htmx's indicator styles off)
and may not be framed. A request with an API key in its URL is refused, as the APIs
refuse one (``shared.auth``), and keys are hidden in the log lines that could hold
them: URLs end up in logs, proxies and browser histories.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import unquote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import KEY_PATTERN, key_in_query, redact_keys

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # htmx's requests
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: browsers then send "Origin: null" with the console's own form
    # posts, which it refuses as cross-site.
    "Referrer-Policy": "same-origin",
}
REDACTED_URL = "(redacted: it held an API key)"
# The console's loggers, and uvicorn's access log, which writes every request's URL.
LOGGERS = (
    "uvicorn.access",
    "services.console.client",
    "services.console.failures",
    "services.console.routes.sign_in",
    __name__,
)

log = logging.getLogger(__name__)


class SecurityHeaders:
    """Puts ``HEADERS`` on every answer. Starlette answers an unexpected error outside
    every middleware: ``failures.on_unexpected`` puts them on its page itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


class KeyInUrlRefusal:
    """Answers any request with an API key in its URL with ``refusal``'s page, before
    anything reads the request (a page, sign-in's ``next``, the provider's session)."""

    def __init__(self, app: ASGIApp, refusal: Callable[[Request], Response]) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not holds_key(
            scope["path"], scope["query_string"].decode("latin-1")
        ):
            await self.app(scope, receive, send)
            return
        # No URL here: the access log line has it, redacted.
        log.warning("refused a %s request with an API key in its URL", scope["method"])
        await self.refusal(Request(scope))(scope, receive, send)


def holds_key(path: str, query: str) -> bool:
    """Whether a path or query string holds an API key: as the APIs look for one, or
    percent-encoded more than once (``next=`` a link to a page with a key)."""
    return key_in_query(query) or KEY_PATTERN.search(_decoded(f"{path}?{query}")) is not None


def hide_keys(text: str) -> str:
    """``text`` with keys hidden: ``shared.auth``'s redaction of a request line, and the
    whole text when a key is still there once decoded."""
    hidden = redact_keys(text)
    return hidden if KEY_PATTERN.search(_decoded(hidden)) is None else REDACTED_URL


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it no longer changes (each round shortens it)."""
    while (decoded := unquote(text)) != text:
        text = decoded
    return text


class KeyRedaction(logging.Filter):
    """Hides keys in a record's message and string arguments (uvicorn's access log
    passes the request line as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = hide_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(hide_keys(a) if isinstance(a, str) else a for a in record.args)
        return True


KEY_REDACTION = KeyRedaction()


def redact_logs() -> None:
    """Hide keys in ``LOGGERS``' lines (a filter on a logger sees only its own records)."""
    for name in LOGGERS:
        logging.getLogger(name).addFilter(KEY_REDACTION)
