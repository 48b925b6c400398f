"""Guard against server-side request forgery by webhook targets.

A target URL must be https (unless http is allowed) and its host must resolve only
to public addresses: private, loopback, link-local, shared (CGNAT), multicast,
reserved and cloud-metadata addresses are refused unless allow-listed. The check
runs when a channel is configured and again at connect time, where the connection
goes to the very address that was checked, so DNS rebinding cannot slip past it.

A URL an operator set explicitly (``VITALS_ALERTS_WEBHOOK_URL``) is trusted as one
target - its scheme, host and port - and nothing else on that host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpcore
import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    """Where a URL connects: scheme, host (lower case) and port (the scheme's default if
    the URL has none)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise TargetRefused("the URL has no host")
        scheme = parts.scheme.lower()
        try:
            port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            raise TargetRefused(f"{host}: the port is not a number from 1 to 65535") from None
        return cls(scheme, host, port)


class TargetRefused(Exception):
    """The target is not allowed; retrying will not change that."""


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = ()
    trusted: frozenset[Target] = frozenset()
    # Where e-mail channels' CA certificate files must be (certificates.py); None: nowhere.
    certificates_dir: Path | None = None

    @classmethod
    def build(
        cls,
        *,
        allow_http: bool,
        allow: Iterable[str],
        trusted_urls: Iterable[str] = (),
        certificates_dir: Path | None = None,
    ) -> TargetPolicy:
        """``allow``: host names, addresses or networks (CIDR), open on every port;
        ``trusted_urls``: URLs an operator set explicitly, each allowed as exactly its
        target (scheme, host and port), over http too and on any address."""
        hosts, networks = set(), []
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower())
        trusted = frozenset(Target.of(url) for url in trusted_urls)
        return cls(allow_http, frozenset(hosts), tuple(networks), trusted, certificates_dir)

    def check_url(self, url: str) -> None:
        target = Target.of(url)
        if target in self.trusted:
            return
        host = target.host
        if target.scheme not in ("http", "https"):
            raise TargetRefused(f"{host}: scheme {target.scheme!r} is not allowed")
        if target.scheme == "http" and not self.allow_http:
            raise TargetRefused(f"{host}: only https targets are allowed")
        literal = _literal_address(host)
        if self._trusted_endpoint(host, target.port) and not self._allowed(host, literal):
            # Connect time sees only host and port: the scheme is settled here.
            raise TargetRefused(f"{host}:{target.port}: only the trusted URL's scheme is allowed")
        if literal is not None:  # a name is checked once resolved
            self.check_address(host, literal)

    def check_smtp_host(self, host: str) -> None:
        """An SMTP host given as an address is checked at once (a trusted URL never opens
        SMTP); a name is checked once resolved."""
        literal = _literal_address(host)
        if literal is not None:
            self.check_address(host, literal)

    def check_address(self, host: str, address: IpAddress, trusted_port: int | None = None) -> None:
        """Refuse ``address`` unless public or allowed; ``trusted_port``: the port of an
        http(s) connection, whose (host, port) may be a trusted URL's."""
        if self._allowed(host, address):
            return
        if trusted_port is not None and self._trusted_endpoint(host, trusted_port):
            return
        problem = refusal(address)
        if problem:
            raise TargetRefused(f"{host} resolves to {address}, {problem}")

    def _allowed(self, host: str, address: IpAddress | None) -> bool:
        """On the allow-list: open on every port, over every scheme."""
        if host.lower() in self.allowed_hosts:
            return True
        return address is not None and any(address in n for n in self.allowed_networks)

    def _trusted_endpoint(self, host: str, port: int) -> bool:
        return any(t.host == host.lower() and t.port == port for t in self.trusted)

    async def resolve(
        self, host: str, port: int, protocol: Literal["http", "smtp"] = "http"
    ) -> list[IpAddress]:
        """Every address of ``host``, each checked; refused if any one is not allowed.
        Trusted URLs open their (host, port) to http(s) connections only, whose scheme
        :meth:`check_url` has checked."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        trusted_port = port if protocol == "http" else None
        for address in addresses:
            self.check_address(host, address, trusted_port)
        return addresses


async def connect_checked(
    policy: TargetPolicy,
    host: str,
    port: int,
    timeout_s: float,
) -> socket.socket:
    """A TCP socket connected to an address of ``host`` the policy allows, the very address
    that was checked (for clients such as SMTP that take a connected socket)."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in await policy.resolve(host, port, "smtp"):
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), timeout_s)
        except OSError as exc:  # TimeoutError included
            sock.close()
            last = exc
            continue
        return sock
    raise last or OSError(f"{host} has no address")


def _literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(address: IpAddress) -> str | None:
    """Why ``address`` may not be a target, or ``None`` for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA:
        return "a cloud metadata address"
    for problem, flag in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a private address", address.is_private),
        ("a multicast address", address.is_multicast),
        ("not a public address", not address.is_global),
    ):
        if flag:
            return problem
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, and to exactly those it checked."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host} has no address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a :class:`GuardedBackend`, ignoring proxy variables
    (a proxy would connect on our behalf, past the guard). Every request's URL is
    checked here, so the backend may trust a (host, port) whose scheme was checked."""

    def __init__(self, policy: TargetPolicy) -> None:
        super().__init__(trust_env=False)
        self._policy = policy
        # httpx has no public way to give its pool a network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(str(request.url))
        return await super().handle_async_request(request)


def guarded_client(policy: TargetPolicy, timeout_s: float, user_agent: str) -> httpx.AsyncClient:
    """An HTTP client that refuses forbidden targets and never follows redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        timeout=timeout_s,
        follow_redirects=False,
        headers={"user-agent": user_agent},
        trust_env=False,
    )
