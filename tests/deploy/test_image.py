"""deploy/image: the HEALTHCHECK script on its own, then the image deploy/image/build.sh
builds (the future `make image`): its configuration, its files, and the image's own root
file system run in private namespaces, since no container runtime can run here: `vitals
migrate`, the default command until its HEALTHCHECK passes, the console's static files.

Building needs root (debootstrap, podman's storage, namespaces) and takes about 4-5
minutes from nothing (the Debian base 2-3, the image 1.5-2), 1.5-2 with the base made.
A missing requirement (root, podman, the namespace tools) fails the build tests.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from services.cli import DEFAULT_PORTS, Service
from tests.deploy.compiled_modules import MODULES, SHOW_FILES, extension_files
from tests.deploy.promql import ROOT
from tests.support.infra import missing_tool

IMAGE_DIR = ROOT / "deploy" / "image"
BUILD = IMAGE_DIR / "build.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/vitals:{VERSION}"
UID = 10001
VENV = "opt/vitals"
SITE_PACKAGES = f"{VENV}/lib/python3.11/site-packages"
# What would make the final stage a build environment.
COMPILER_GLOBS = (
    *("gcc", "gcc-*", "*-gcc", "*-gcc-*", "g++", "g++-*", "cc", "c++"),
    *("clang", "clang-*", "cpp", "cpp-*", "make", "as", "ld", "ld.bfd", "ld.gold", "ld.lld"),
)
BUILD_TIMEOUT_S = 900
# A mount, pid and network namespace of its own, as a container has; everything in them
# dies with the command.
NAMESPACES = ("unshare", "--mount", "--pid", "--net", "--fork", "--kill-child")


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_healthcheck", IMAGE_DIR / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load_healthcheck()


# --- the HEALTHCHECK script ----------------------------------------------------------


def test_healthcheck_knows_the_default_ports_of_vitals_serve() -> None:
    from_cli = {service.value: port for service, port in DEFAULT_PORTS.items()}
    assert from_cli == healthcheck.DEFAULT_PORTS


@pytest.mark.parametrize(
    ("argv", "address"),
    [
        (
            ["/opt/vitals/bin/python3", "/opt/vitals/bin/vitals", "serve", "ingest"],
            ("127.0.0.1", 8001),
        ),
        (["/opt/vitals/bin/vitals", "serve", "console", "--host", "0.0.0.0"], ("127.0.0.1", 8004)),
        (["python3", "vitals", "serve", "--port", "9100", "scoring"], ("127.0.0.1", 9100)),
        (
            ["python3", "vitals", "serve", "alerts", "--port=9200", "--workers", "2"],
            ("127.0.0.1", 9200),
        ),
        (["python3", "vitals", "serve", "alerts", "--host=::"], ("::1", 8003)),
        (["python3", "vitals", "serve", "scoring", "--host", "10.1.2.3"], ("10.1.2.3", 8002)),
        # tini or docker-init in front of the entry point (compose's `init: true`)
        (
            ["/sbin/docker-init", "--", "vitals", "serve", "alerts", "--host", "0.0.0.0"],
            ("127.0.0.1", 8003),
        ),
        (["python3", "vitals", "migrate"], None),
        (["python3", "vitals", "serve", "nonsense"], None),
        (["python3", "vitals", "serve"], None),
        (["python3", "-m", "http.server", "serve"], None),
    ],
)
def test_healthcheck_reads_the_served_address_from_the_command_line(
    argv: list[str], address: tuple[str, int] | None
) -> None:
    assert healthcheck.served_address(argv) == address


def _fake_proc(root: Path, processes: dict[str, list[str]]) -> Path:
    for pid, argv in processes.items():
        (root / pid).mkdir()
        (root / pid / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
    (root / "self").mkdir()  # not a pid: ignored
    return root


def test_healthcheck_lists_command_lines_oldest_pid_first(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, {"20": ["b", ""], "3": ["a", "--host", "x"]})
    (proc / "7").mkdir()  # a kernel thread: empty cmdline
    (proc / "7" / "cmdline").write_bytes(b"")
    assert list(healthcheck.command_lines(proc, os.getuid())) == [["a", "--host", "x"], ["b", ""]]
    assert list(healthcheck.command_lines(proc, os.getuid() + 1)) == []


class _Healthz(http.server.BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = b'{"status": "failing", "problems": {"scoring": "stopped"}}'
        self.send_response(type(self).status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def healthz() -> Iterator[tuple[type[_Healthz], int]]:
    handler = type("Healthz", (_Healthz,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_healthcheck_passes_when_healthz_answers_200(
    tmp_path: Path, healthz: tuple[type[_Healthz], int]
) -> None:
    handler, port = healthz
    proc = _fake_proc(tmp_path, {"1": ["vitals", "serve", "console", "--port", str(port)]})
    assert healthcheck.main(proc) == 0
    assert handler.paths == ["/healthz"]


def test_healthcheck_fails_when_healthz_answers_503(
    tmp_path: Path, healthz: tuple[type[_Healthz], int], capsys: pytest.CaptureFixture[str]
) -> None:
    handler, port = healthz
    handler.status = 503
    proc = _fake_proc(tmp_path, {"1": ["vitals", "serve", "scoring", f"--port={port}"]})
    assert healthcheck.main(proc) == 1
    assert '"scoring": "stopped"' in capsys.readouterr().err


def test_healthcheck_fails_when_nothing_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    proc = _fake_proc(tmp_path, {"1": ["vitals", "serve", "alerts", "--port", str(free_port)]})
    assert healthcheck.main(proc) == 1
    assert f"127.0.0.1:{free_port}/healthz" in capsys.readouterr().err


def test_healthcheck_passes_without_a_server_to_check(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, {"1": ["/sbin/docker-init", "--", "vitals", "migrate"]})
    assert healthcheck.main(proc) == 0


# --- the built image -------------------------------------------------------------------


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"podman {shlex.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image, built by deploy/image/build.sh (with its Debian base when missing)."""
    if os.geteuid() != 0:
        missing_tool("building the image needs root: debootstrap, podman's storage, namespaces")
    log = tmp_path_factory.mktemp("image") / "build.log"
    with log.open("w") as output:
        done = subprocess.run(
            [str(BUILD)],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"deploy/image/build.sh failed ({done.returncode}):\n{tail}", pytrace=False)
    return IMAGE


@pytest.fixture(scope="module")
def inspected(image: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(_podman("image", "inspect", image))
    return found[0]


@pytest.fixture(scope="module")
def image_root(image: str) -> Iterator[Path]:
    """The image's root file system, mounted read-only."""
    root = Path(_podman("image", "mount", image).strip())
    try:
        yield root
    finally:
        _podman("image", "unmount", image)


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_image_configuration(inspected: dict[str, Any]) -> None:
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["vitals"]
    assert config["Cmd"] == ["serve", "ingest", "--host", "0.0.0.0"]
    assert config["WorkingDir"] == "/var/lib/vitals"
    assert set(config["ExposedPorts"]) == {f"{port}/tcp" for port in DEFAULT_PORTS.values()}
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    # Docker format: an OCI image config would have dropped the health check.
    assert inspected["Healthcheck"]["Test"] == [
        "CMD",
        "/opt/vitals/bin/python",
        "-I",
        "/usr/local/lib/vitals/healthcheck.py",
    ]
    labels = config["Labels"]
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"].startswith(head)
    assert labels["org.opencontainers.image.title"] == "vitals"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.created"].endswith("Z")


def _inside(root: Path, path: Path) -> Path:
    """path as seen from inside root, symbolic links followed within root."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
    raise AssertionError(f"{path}: too many symbolic links")


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_image_files(image_root: Path) -> None:
    entry_point = image_root / VENV / "bin" / "vitals"
    assert entry_point.is_file() and os.access(entry_point, os.X_OK)
    interpreter = entry_point.read_text().splitlines()[0].removeprefix("#!")
    assert _inside(image_root, image_root / interpreter.lstrip("/")).is_file(), interpreter

    packaged = image_root / SITE_PACKAGES
    for data in (
        "services/console/static/vendor/htmx.min.js",
        "services/console/templates/base.html",
        "services/scoring/scorecards",
        "services/alerts/rules/default.yaml",
        "services/scoring/migrations/versions/0001_initial.py",
        "services/ingest/migrations/script.py.mako",
    ):
        assert (packaged / data).exists(), f"{data} is not in the image"

    # No build tools: no compiler, no headers, no installer in the final stage.
    found = [
        str(path.relative_to(image_root))
        for folder in ("usr/bin", "usr/local/bin", "usr/sbin")
        for pattern in COMPILER_GLOBS
        for path in (image_root / folder).glob(pattern)
    ]
    assert found == []
    assert not list((image_root / "usr").glob("**/include/python3*/Python.h"))
    assert not list(packaged.glob("pip*")) and not (image_root / VENV / "bin" / "pip").exists()
    assert not list(packaged.glob("mypy*")) and not list(packaged.glob("setuptools*"))
    for compiled in extension_files(packaged):
        assert Path(compiled).is_file(), f"{compiled} is not in the image"

    home = image_root / "var/lib/vitals"
    assert (home.stat().st_uid, home.stat().st_gid) == (UID, UID)
    assert f"vitals:x:{UID}:{UID}:" in (image_root / "etc/passwd").read_text()


@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_image_runs_its_default_command_until_healthy(
    image_root: Path, inspected: dict[str, Any]
) -> None:
    """The image's own files run as its user, as a container would, in private mount,
    pid and network namespaces (no container runtime is needed): `vitals migrate` on the
    SQLite defaults, then the default command until the HEALTHCHECK passes, then the
    console, whose static files are package data."""
    for tool in ("unshare", "chroot", "ip"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed (util-linux, coreutils, iproute2)")
    config = inspected["Config"]
    command = shlex.join([*config["Entrypoint"], *config["Cmd"]])
    check = shlex.join(inspected["Healthcheck"]["Test"][1:])
    console = DEFAULT_PORTS[Service.console]
    inside = f"""
cd {shlex.quote(config["WorkingDir"])}
vitals migrate
until_healthy() {{
  "$@" >server.log 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    if {check} 2>/dev/null; then echo "healthy: $*"; return 0; fi
    if ! kill -0 "$server" 2>/dev/null; then echo "exited: $*"; cat server.log; return 1; fi
    sleep 0.1
  done
  echo "not healthy within 30 s: $*"; cat server.log; return 1
}}
stop() {{ kill "$server"; wait "$server" || true; }}
until_healthy {command}
stop
until_healthy vitals serve console --host 0.0.0.0
python3 -I -c 'import urllib.request as u; print("static:", u.urlopen("http://127.0.0.1:{console}/static/vendor/htmx.min.js").status)'
stop
python3 -I -c {shlex.quote(SHOW_FILES)} {" ".join(MODULES)}
"""
    outside = f"""
root=$1
shift
ip link set lo up
mount -t tmpfs -o mode=0750,uid={UID},gid={UID} tmpfs "$root/var/lib/vitals"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
exec chroot --userspec={config["User"]} "$root" \\
  /usr/bin/env -i "$@" /bin/sh -euc {shlex.quote(inside)}
"""
    done = subprocess.run(
        [*NAMESPACES, "sh", "-euc", outside, "sh", str(image_root), *config["Env"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ingest: sqlite+aiosqlite:///var/ingest.db is at" in output
    assert f"healthy: {command}" in output
    assert "healthy: vitals serve console --host 0.0.0.0" in output
    assert "static: 200" in output
    # The compiled modules load as the service user, with no compiler or mypy around.
    loaded = output.splitlines()
    assert all(compiled in loaded for compiled in extension_files(Path("/") / SITE_PACKAGES))
