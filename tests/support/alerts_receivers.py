"""Real local receivers for the alerts tests: an HTTP server recording every request
(with scripted answers, headers included), an SMTP server (aiosmtpd) recording mail,
and bare TCP servers that misbehave (close at once, speak another protocol, never
answer). All run on the test's event loop, on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import orjson
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response

from tests.support.servers import free_port, server_config, wait_for


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST (answered or not); answers with queued answers, then with
    ``otherwise`` (200 unless changed: a receiver answering 503 until it is fixed)."""

    answers: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    delay_s: float = 0.0  # how long each answer takes: a slow receiver
    otherwise: Answer = field(default_factory=Answer)

    def answer(self, path: str, *answers: Answer) -> None:
        self.answers.setdefault(path, []).extend(answers)

    def at(self, path: str, status: int = 200) -> list[Recorded]:
        """Requests to ``path`` that were answered with ``status``."""
        return [
            r for r in self.requests if r.path == path and r.headers["x-answered"] == str(status)
        ]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def record(path: str, request: Request) -> Response:
            queued = self.answers.get(f"/{path}", [])
            answer = queued.pop(0) if queued else self.otherwise
            headers = {**dict(request.headers), "x-answered": str(answer.status)}
            self.requests.append(Recorded(f"/{path}", headers, await request.body()))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return Response(status_code=answer.status, headers=answer.headers)

        return app


@contextlib.asynccontextmanager
async def serve_on(app: FastAPI, port: int) -> AsyncIterator[str]:
    """Like ``serve``, on a given port: a receiver can go away and come back there."""
    server = uvicorn.Server(server_config(app, port, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _started(server, task), 30, "the receiver to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise AssertionError("the receiver stopped while starting")
    return server.started


TcpBehaviour = Literal["close", "banner", "silent"]


@contextlib.asynccontextmanager
async def tcp_server(behaviour: TcpBehaviour) -> AsyncIterator[int]:
    """A loopback TCP server that is no receiver: it closes each connection at once
    (``close``), greets like a database or SMTP server would (``banner``), or accepts
    and never says a word (``silent``). Yields its port."""
    port = free_port()
    never = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if behaviour == "banner":
                writer.write(b"220 mail.internal ESMTP Postfix\r\n")
                await writer.drain()
                await reader.read(1024)
            elif behaviour == "silent":
                await never.wait()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield port
    finally:
        never.set()
        server.close()
        await server.wait_closed()


@dataclass
class MailBox:
    """An aiosmtpd handler keeping every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server(
    *, tls: ssl.SSLContext | None = None, implicit_tls: bool = False
) -> AsyncIterator[tuple[MailBox, int]]:
    """An SMTP server on a loopback port: plain, STARTTLS (``tls``) or implicit TLS."""
    box, port = MailBox(), free_port()
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        starttls = None if implicit_tls else tls
        return SMTP(
            box, hostname="localhost", tls_context=starttls, require_starttls=bool(starttls)
        )

    server = await loop.create_server(
        protocol, "127.0.0.1", port, ssl=tls if implicit_tls else None
    )
    try:
        yield box, port
    finally:
        server.close()
        await server.wait_closed()


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for localhost/127.0.0.1 and the CA file clients must trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
