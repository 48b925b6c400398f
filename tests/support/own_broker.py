"""A Kafka broker of a test's own, for tests that stop and start it: the shared test
broker is never touched. Started and stopped with ``deploy/local/kafka.sh``."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

SCRIPT = Path(__file__).parents[2] / "deploy" / "local" / "kafka.sh"


@dataclass
class OwnBroker:
    data_dir: Path
    port: int = 0
    controller_port: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self._run("start")

    async def stop(self) -> None:
        await self._run("stop")

    async def _run(self, command: str) -> None:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
            "VITALS_VAR_DIR": str(self.data_dir),
        }
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            command,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise AssertionError(f"kafka.sh {command} failed:\n{output.decode()}")
