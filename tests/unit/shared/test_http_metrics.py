"""Every service's /metrics counts and times its requests by route template, method and
status code, and says which version runs (vitals_build_info); the console also times
its pages and its calls to the other services."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.console.app import create_app as create_console
from services.console.metrics import TimedTransport
from services.console.settings import ConsoleSettings
from shared.http import create_service_app


@asynccontextmanager
async def _nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def _service() -> FastAPI:
    app = create_service_app(title="things", description="a service", lifespan=_nothing)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "broken":
            raise RuntimeError("a fault of ours")
        return {"thing_id": thing_id}

    return app


def _samples(exposition: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


def _count(exposition: str, name: str, **labels: str) -> float:
    return _samples(exposition, name).get(frozenset(labels.items()), 0.0)


async def _metrics(client: httpx.AsyncClient) -> str:
    scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    return scraped.text


async def test_requests_are_counted_by_route_template_method_and_code() -> None:
    transport = httpx.ASGITransport(_service(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        before = await _metrics(client)
        answers = [
            (await client.get(path)).status_code
            for path in ("/v1/things/a", "/v1/things/b", "/v1/things/broken", "/nowhere")
        ]
        answers.append((await client.request("BREW", "/v1/things/a")).status_code)
        after = await _metrics(client)

    assert answers == [200, 200, 500, 404, 405]
    route = "/v1/things/{thing_id}"
    expected = [
        ({"route": route, "method": "GET", "code": "200"}, 2),
        ({"route": route, "method": "GET", "code": "500"}, 1),
        ({"route": "unmatched", "method": "GET", "code": "404"}, 1),
        ({"route": route, "method": "other", "code": "405"}, 1),
    ]
    for labels, times in expected:
        for name in ("vitals_http_requests_total", "vitals_http_request_duration_seconds_count"):
            grown = _count(after, name, **labels) - _count(before, name, **labels)
            assert grown == times, (name, labels)
    routes = {dict(labels)["route"] for labels in _samples(after, "vitals_http_requests_total")}
    assert not any(route.startswith("/v1/things/") and "{" not in route for route in routes)


async def test_build_info_names_the_installed_version() -> None:
    transport = httpx.ASGITransport(_service())
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        exposition = await _metrics(client)

    info = _samples(exposition, "vitals_build_info")
    assert [dict(labels)["version"] for labels, value in info.items() if value == 1] == [
        version("vitals")
    ]


async def test_the_console_times_its_pages_and_its_requests() -> None:
    app = create_console(ConsoleSettings(environment="test"))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        before = await _metrics(client)
        assert (await client.get("/sign-in")).status_code == 200
        assert (await client.get("/static/console.css")).status_code == 200
        after = await _metrics(client)

    page = "vitals_console_page_render_seconds_count"
    assert _count(after, page, page="sign_in.html") - _count(before, page, page="sign_in.html") == 1
    request = {"route": "/sign-in", "method": "GET", "code": "200"}
    grown = _count(after, "vitals_http_requests_total", **request) - _count(
        before, "vitals_http_requests_total", **request
    )
    assert grown == 1
    static = {"route": "/static", "method": "GET", "code": "200"}
    grown = _count(after, "vitals_http_requests_total", **static) - _count(
        before, "vitals_http_requests_total", **static
    )
    assert grown == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("outcome", ["answered", "refused"])
async def test_the_consoles_calls_to_a_service_are_timed_and_failures_counted(
    outcome: str,
) -> None:
    service = FastAPI()

    @service.get("/v1/portfolio")
    async def failing() -> None:
        raise RuntimeError("down")

    inner = (
        httpx.ASGITransport(service, raise_app_exceptions=False)
        if outcome == "answered"
        else httpx.AsyncHTTPTransport()
    )
    base = "http://scoring" if outcome == "answered" else f"http://127.0.0.1:{_closed_port()}"
    code, reason = ("500", "server_error") if outcome == "answered" else ("error", "ConnectError")
    transport = TimedTransport("scoring", inner)
    probe = httpx.ASGITransport(_service())
    async with httpx.AsyncClient(transport=probe, base_url="http://probe") as scraper:
        before = await _metrics(scraper)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            if outcome == "answered":
                assert (await client.get("/v1/portfolio")).status_code == 500
            else:
                with pytest.raises(httpx.ConnectError):
                    await client.get("/v1/portfolio")
        after = await _metrics(scraper)

    timed = "vitals_console_api_call_seconds_count"
    failed = "vitals_console_api_call_errors_total"
    assert (
        _count(after, timed, service="scoring", code=code)
        - _count(before, timed, service="scoring", code=code)
        == 1
    )
    assert (
        _count(after, failed, service="scoring", reason=reason)
        - _count(before, failed, service="scoring", reason=reason)
        == 1
    )
