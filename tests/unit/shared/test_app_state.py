"""Routes reach what ``create_app`` kept through ``shared.http.app_state``, on every
request: it must be called inline, never through the thread pool."""

from __future__ import annotations

import inspect
from typing import Annotated

import httpx
from fastapi import FastAPI
from fastapi.params import Depends

from shared.http import app_state


def test_the_dependency_is_a_coroutine_so_it_costs_no_thread_pool_hop() -> None:
    dependency = app_state("kept")

    assert isinstance(dependency, Depends)
    assert inspect.iscoroutinefunction(dependency.dependency)


async def test_a_route_gets_what_the_app_kept() -> None:
    app = FastAPI()
    app.state.kept = {"name": "vitals"}

    @app.get("/")
    async def read(kept: Annotated[dict[str, str], app_state("kept")]) -> dict[str, str]:
        return kept

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitals") as client:
        assert (await client.get("/")).json() == {"name": "vitals"}
