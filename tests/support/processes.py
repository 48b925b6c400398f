"""Services as separate processes, started the way an operator would, to kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port, is_ready, wait_for


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the sample with exactly ``labels`` in a ``/metrics`` text; 0 when not
    reported yet."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def metric_total(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` that carry ``labels`` (among others) in a
    ``/metrics`` text; None when there is none yet."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    return sum(values) if values else None


@dataclass
class ServiceProcess:
    """``python -m services serve SERVICE`` on its own port, logging to ``log_dir/NAME.log``
    (``NAME`` is the service unless given); it may be started again after a kill."""

    service: str
    env: dict[str, str]
    log_dir: Path
    name: str = ""
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.name = self.name or self.service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [sys.executable, "-m", "services", "serve", self.service]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    async def wait_ready(self, timeout_s: float = 60) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def ready() -> bool:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                return await is_ready(client)

            await wait_for(ready, timeout_s, f"{self.name} to be ready")

    def kill(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    async def metric(self, name: str) -> float:
        """An unlabelled metric's value from ``/metrics``; 0 when not reported yet."""
        async with httpx.AsyncClient(base_url=self.url) as client:
            return metric_value((await client.get("/metrics")).text, name)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
