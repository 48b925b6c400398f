"""Every metric of the console: page rendering, and its calls to the scoring and alerts
APIs. Requests by route are shared.metrics' ``vitals_http_*``, as in every service."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter, Histogram
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.templating import _TemplateResponse

from shared.metrics import HTTP_LATENCY_BUCKETS

PAGE_RENDER_SECONDS = Histogram(
    "vitals_console_page_render_seconds",
    "Time to render a page's template into HTML (the API calls before it not included), by "
    "template.",
    ["page"],
    buckets=HTTP_LATENCY_BUCKETS,
)
API_CALL_SECONDS = Histogram(
    "vitals_console_api_call_seconds",
    "Time from sending a call to the scoring or alerts API until its answer's headers, by "
    'service and status code ("error" when no answer came).',
    ["service", "code"],
    buckets=HTTP_LATENCY_BUCKETS,
)
API_CALL_ERRORS = Counter(
    "vitals_console_api_call_errors_total",
    "Calls to the scoring or alerts API that got no answer (reason: the httpx error, "
    "ConnectError, ReadTimeout, ...) or a 5xx (reason: server_error).",
    ["service", "reason"],
)


class TimedTemplates(Jinja2Templates):
    """Jinja2 templates whose rendering is timed per template: Starlette renders the
    page when the response is made."""

    def TemplateResponse(  # noqa: N802 (Starlette's name)
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> _TemplateResponse:
        started = time.perf_counter()
        try:
            return super().TemplateResponse(
                request,
                name,
                context,
                status_code=status_code,
                headers=headers,
                media_type=media_type,
                background=background,
            )
        finally:
            PAGE_RENDER_SECONDS.labels(name).observe(time.perf_counter() - started)


class TimedTransport(httpx.AsyncBaseTransport):
    """Times every call the console makes to ``service`` and counts those that fail."""

    def __init__(self, service: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.service = service
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            API_CALL_SECONDS.labels(self.service, "error").observe(time.perf_counter() - started)
            API_CALL_ERRORS.labels(self.service, type(exc).__name__).inc()
            raise
        API_CALL_SECONDS.labels(self.service, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        if response.status_code >= 500:
            API_CALL_ERRORS.labels(self.service, "server_error").inc()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
