"""Real local servers for tests: a service app on uvicorn, a webhook receiver, and a
TCP relay that can stand between a service and the broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy.engine import make_url

from shared.serving import server_options
from shared.settings import VitalsSettings


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the ephemeral range. A server killed and started again
    on its port must find it free: a port the kernel may hand to any outgoing connection
    meanwhile (a broker client in the other test worker) would not always be."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, _ephemeral_low())
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


async def wait_for(
    condition: Callable[[], Awaitable[Any]], timeout_s: float, what: str, every_s: float = 0.1
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail saying ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


async def is_ready(client: httpx.AsyncClient) -> bool:
    """Whether the service behind ``client`` says it is ready. A probe that gets no
    answer in time, or no connection yet, is "not yet": on a loaded machine a starting
    service may be slow to answer, and the wait around the probe holds the deadline."""
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


# Every setting's default, none read from the environment: the settings of an app that
# is no Vitals service (a receiver), which trust no proxy.
DEFAULT_SETTINGS = VitalsSettings.model_construct()


def server_config(
    app: FastAPI,
    port: int,
    *,
    settings: VitalsSettings | None = None,
    lifespan: Literal["on", "off"] = "on",
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` on a loopback ``port``, with the server options
    `vitals serve` gives uvicorn (``shared.serving``) for ``settings``: given, else the
    ones the app keeps as ``app.state.settings``, else the defaults."""
    kept = getattr(app.state, "settings", None)
    if settings is None:
        settings = kept if isinstance(kept, VitalsSettings) else DEFAULT_SETTINGS
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan=lifespan,
        **server_options(settings),
    )


@contextlib.asynccontextmanager
async def serve(app: FastAPI, settings: VitalsSettings | None = None) -> AsyncIterator[str]:
    """Run ``app`` (with its lifespan) on a free loopback port; yields its base URL.
    uvicorn trusts the proxies of ``settings`` (see ``server_config``)."""
    port = free_port()
    server = uvicorn.Server(server_config(app, port, settings=settings))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(_started(server, task), 30, "the app to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
    async def started() -> bool:
        if task.done():
            task.result()
            raise AssertionError("the server stopped while starting")
        return server.started

    return started


@dataclass
class WebhookReceiver:
    """Records every POST; answers with the queued statuses, then 200."""

    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            status = self.statuses.pop(0) if self.statuses else 200
            self.headers.append(dict(request.headers))
            if status < 300:
                self.received.append(await request.json())
            return Response(status_code=status)

        return app


@dataclass
class TcpRelay:
    """Forwards a local port to ``target``; stopped, the port refuses connections."""

    target_host: str
    target_port: int
    port: int = field(default_factory=free_port)
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for pipe in self._pipes:
                pipe.cancel()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        sink.close()


@contextlib.asynccontextmanager
async def relayed(database: str) -> AsyncIterator[tuple[TcpRelay, str]]:
    """A relay in front of ``database``, started, and the URL through it: stop the relay
    to cut the database off, start it again to bring it back."""
    url = make_url(database)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    await relay.start()
    try:
        yield relay, url.set(port=relay.port).render_as_string(hide_password=False)
    finally:
        await relay.stop()
