"""The image's HEALTHCHECK: ask this container's `vitals serve` process for its /healthz.

One image runs every service on its own port, so the port is not known when the image
is built. This finds the `vitals serve` process in /proc (among the processes of its
own uid: the health check runs as the container's user), reads the service, --host and
--port from its command line the way `vitals serve` does, and exits 0 only when
/healthz answers 200. A container that serves nothing (`vitals migrate`,
`vitals config check`) has nothing to check and is healthy. Standard library only:
the image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# services/cli.py's DEFAULT_PORTS (tests/deploy/test_image.py keeps the two equal).
DEFAULT_PORTS = {"ingest": 8001, "scoring": 8002, "alerts": 8003, "console": 8004}
DEFAULT_HOST = "127.0.0.1"
OPTIONS_WITH_VALUE = frozenset({"--host", "--port", "--workers"})
# A server bound to every address is asked on loopback.
LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
# Below the HEALTHCHECK's own timeout, so that a slow answer is reported, not killed.
TIMEOUT_S = 4.0
SHOWN_BODY_BYTES = 500


def served_address(argv: list[str]) -> tuple[str, int] | None:
    """The (host, port) a `vitals serve SERVICE` command line listens on, None for any
    other command line."""
    for index, arg in enumerate(argv[:-1]):
        if Path(arg).name == "vitals" and argv[index + 1] == "serve":
            rest = iter(argv[index + 2 :])
            break
    else:
        return None
    service: str | None = None
    host, port = DEFAULT_HOST, ""
    for arg in rest:
        name, has_value, value = arg.partition("=")
        if name in OPTIONS_WITH_VALUE:
            if not has_value:
                value = next(rest, "")
            if name == "--host":
                host = value
            elif name == "--port":
                port = value
        elif not arg.startswith("-") and service is None:
            service = arg
    if service is None or service not in DEFAULT_PORTS:
        return None
    # `vitals serve` takes a missing or zero port as the service's default.
    number = int(port) if port.isdigit() else 0
    return LOOPBACK_FOR.get(host, host), number or DEFAULT_PORTS[service]


def command_lines(proc: Path, uid: int) -> Iterator[list[str]]:
    """The command lines of uid's processes, oldest pid first."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        entry = proc / str(pid)
        try:
            if entry.stat().st_uid != uid:
                continue
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if raw:
            # Every argument ends with a NUL (an empty argument too).
            args = raw.removesuffix(b"\0").split(b"\0")
            yield [arg.decode(errors="replace") for arg in args]


def probe(host: str, port: int) -> int:
    """0 when http://host:port/healthz answers 200, else 1 with the reason on stderr."""
    literal = f"[{host}]" if ":" in host else host
    url = f"http://{literal}:{port}/healthz"
    # No proxy: HTTP_PROXY in the container's environment must not catch loopback calls.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        body = exc.read(SHOWN_BODY_BYTES).decode(errors="replace")
        print(f"{url}: {exc.code} {body}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: {status}", file=sys.stderr)
        return 1
    return 0


def main(proc: Path = Path("/proc")) -> int:
    for argv in command_lines(proc, os.getuid()):
        address = served_address(argv)
        if address is not None:
            return probe(*address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
