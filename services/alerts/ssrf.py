"""Guard against server-side request forgery by webhook targets.

A target URL must be https (unless http is allowed) and its host must resolve only
to public addresses: private, loopback, link-local, shared (CGNAT), multicast,
reserved and cloud-metadata addresses are refused unless allow-listed. The check
runs when a channel is configured and again at connect time, where the connection
goes to the very address that was checked, so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
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


class TargetRefused(Exception):
    """The target is not allowed; retrying will not change that."""


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = ()
    http_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls, *, allow_http: bool, allow: Iterable[str], trusted_urls: Iterable[str] = ()
    ) -> TargetPolicy:
        """``allow``: host names, addresses or networks (CIDR); ``trusted_urls``: URLs an
        operator set explicitly, whose host is allowed over http too."""
        hosts, networks = set(), []
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower())
        trusted = {(urlsplit(url).hostname or "").lower() for url in trusted_urls} - {""}
        return cls(allow_http, frozenset(hosts | trusted), tuple(networks), frozenset(trusted))

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise TargetRefused("the URL has no host")
        if parts.scheme == "http" and not (self.allow_http or host in self.http_hosts):
            raise TargetRefused(f"{host}: only https targets are allowed")
        if parts.scheme not in ("http", "https"):
            raise TargetRefused(f"{host}: scheme {parts.scheme!r} is not allowed")
        literal = _literal_address(host)
        if literal is not None:  # a name is checked once resolved
            self.check_address(host, literal)

    def check_address(self, host: str, address: IpAddress) -> None:
        if host.lower() in self.allowed_hosts or any(address in n for n in self.allowed_networks):
            return
        problem = refusal(address)
        if problem:
            raise TargetRefused(f"{host} resolves to {address}, {problem}")

    async def resolve(self, host: str, port: int) -> list[IpAddress]:
        """Every address of ``host``, each checked; refused if any one is not allowed."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(host, address)
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
    for address in await policy.resolve(host, port):
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
    (a proxy would connect on our behalf, past the guard)."""

    def __init__(self, policy: TargetPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx has no public way to give its pool a network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy),
        )


def guarded_client(policy: TargetPolicy, timeout_s: float, user_agent: str) -> httpx.AsyncClient:
    """An HTTP client that refuses forbidden targets and never follows redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        timeout=timeout_s,
        follow_redirects=False,
        headers={"user-agent": user_agent},
        trust_env=False,
    )
