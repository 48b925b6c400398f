"""The signed Stripe webhook `make run` prints (deploy/local/run.sh), run as printed
against an ingest with the development secret it sets: accepted, not 503."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

import pytest

from tests.deploy.promql import ROOT
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

RUN = ROOT / "deploy" / "local" / "run.sh"
PRINTED_INGEST = "http://127.0.0.1:8001"


def _development_secret() -> str:
    (secret,) = re.findall(
        r"VITALS_INGEST_STRIPE_WEBHOOK_SECRETS:-(whsec_\w+)", RUN.read_text(encoding="utf-8")
    )
    return str(secret)


def _printed_example(secret: str) -> str:
    """The Stripe part of run.sh's closing message, as bash prints it."""
    message = RUN.read_text(encoding="utf-8").split("<<MSG\n", 1)[1].split("\nMSG\n", 1)[0]
    example = message.split("A Stripe webhook", 1)[1].split("\n", 1)[1]
    example = example.split("\nPress Ctrl-C", 1)[0]
    printed = subprocess.run(
        ["bash", "-c", f"cat <<MSG\n{example}\nMSG"],
        env={"STRIPE_SECRET": secret, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "curl" in printed and PRINTED_INGEST in printed, printed
    return printed


async def test_the_printed_stripe_webhook_is_accepted(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    secret = _development_secret()
    example = _printed_example(secret)
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets=secret,
    )
    async with ingest_client(settings) as client:
        sent = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            example.replace(PRINTED_INGEST, str(client.base_url).rstrip("/")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sent.communicate(), 60)

    assert sent.returncode == 0, err.decode()
    answer = json.loads(out)
    assert (answer["accepted"], answer["rejected"]) == (1, 0), answer
