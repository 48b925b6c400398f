"""The options a Vitals service runs uvicorn with, from its settings.

``vitals serve`` (one process or ``--workers N``) and the tests' servers
(``tests/support/servers.py``) take them from :func:`server_options`, so both trust the
same proxies. Requests without a valid API key are rate-limited per client address
(``shared.auth``), and uvicorn replaces the connection's address with the one in
``X-Forwarded-For`` when the connection comes from an address it trusts: by default
127.0.0.1 and ::1, or whatever ``FORWARDED_ALLOW_IPS`` says. Then any client on the
host, or reaching it through a local relay, would pick its own bucket with the header.
Vitals trusts only the proxies ``VITALS_TRUSTED_PROXIES`` names, none by default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypedDict

from shared.settings import VitalsSettings

# uvicorn's own variable, read by uvicorn.Config whenever forwarded_allow_ips is None.
UVICORN_VARIABLE = "FORWARDED_ALLOW_IPS"


class ServerOptions(TypedDict):
    """Keyword arguments of ``uvicorn.run`` and ``uvicorn.Config``."""

    proxy_headers: bool
    forwarded_allow_ips: list[str]


class ServerOptionsError(ValueError):
    """The environment asks for something Vitals will not do; the message says what to
    set instead."""


def server_options(
    settings: VitalsSettings, environ: Mapping[str, str] = os.environ
) -> ServerOptions:
    """uvicorn's options for ``settings``: proxy headers believed only from the proxies
    ``settings.trusted_proxies`` names, and off when it names none.

    The list is always given, never None, so uvicorn falls back neither on its
    127.0.0.1 default nor on ``FORWARDED_ALLOW_IPS``; that variable set (not empty)
    raises :class:`ServerOptionsError` rather than being ignored without a word.
    """
    leftover = environ.get(UVICORN_VARIABLE, "").strip()
    if leftover:
        raise ServerOptionsError(
            f"{UVICORN_VARIABLE}={leftover} is set, which Vitals does not read: name the "
            f"proxies in VITALS_TRUSTED_PROXIES instead (comma-separated addresses or CIDR "
            f"networks) and unset {UVICORN_VARIABLE}"
        )
    trusted = [
        # A single address as an address: uvicorn looks those up in a set.
        str(network.network_address) if network.num_addresses == 1 else str(network)
        for network in settings.trusted_proxies
    ]
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}
