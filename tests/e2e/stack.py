"""The three services as separate processes, started the way an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import free_port, wait_for


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.log_dir / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services", "serve", self.name, "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 60) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def ready() -> bool:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout_s, f"{self.name} to be ready")

    def kill(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_dir / f"{self.name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def service_env(
    *, kafka: str, database: str, topics: dict[str, str], webhook_url: str
) -> dict[str, str]:
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "INGEST_DATABASE_URL": database,
        "SCORING_DATABASE_URL": database,
        "ALERTS_DATABASE_URL": database,
        "ALERTS_WEBHOOK_URL": webhook_url,
        "STARTUP_RETRY_MAX_S": "1",
        "TOPIC_PARTITIONS": "3",
        "ENVIRONMENT": "test",
        "INGEST_RAW_TOPICS": f"{topics['events_topic']}.usage.raw",
        "INGEST_RAW_CONSUMER_GROUP": f"{topics['events_topic']}-raw",
        **{name.upper(): value for name, value in topics.items()},
    }
    return {**os.environ, **{f"VITALS_{k}": v for k, v in settings.items()}}


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "services", "migrate"], env=env, check=True, capture_output=True
    )
