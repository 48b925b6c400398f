"""promtool check metrics on what each service exposes: every family with a sample,
and the /metrics of the services running as processes on real Kafka and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.exposition import APPS
from tests.deploy.promql import ROOT
from tests.e2e.stack import UNPAID_PAST_GRACE, migrate, service_env
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess
from tests.support.servers import WebhookReceiver, serve, wait_for


def _lint(promtool: str, exposition: bytes) -> str:
    """promtool's findings on ``exposition``; empty when it has none."""
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    findings = (checked.stdout + checked.stderr).decode()
    return findings if checked.returncode != 0 or findings.strip() else ""


def test_promtool_reports_what_breaks_the_naming_rules(promtool: str) -> None:
    bad = b"# HELP requests_ms Requests.\n# TYPE requests_ms counter\nrequests_ms 1\n"

    findings = _lint(promtool, bad)

    assert 'counter metrics should have "_total" suffix' in findings
    assert "abbreviated units" in findings


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_metric_family_of_a_service_passes_promtool(promtool: str, service: str) -> None:
    # A process of its own: the service's modules only, and metrics set here stay here.
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    exposition = subprocess.run(
        [sys.executable, "-m", "tests.deploy.exposition", service],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    families = [
        family
        for family in text_string_to_metric_families(exposition.decode())
        if family.name.startswith("vitals_")
    ]

    assert [family.name for family in families if not family.samples] == []
    assert any(family.name.startswith(f"vitals_{service}_") for family in families)
    assert {"vitals_http_requests", "vitals_build_info"} <= {f.name for f in families}
    assert _lint(promtool, exposition) == ""


@pytest.fixture
async def running_services(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Ingest, scoring, alerts and the console as processes, after one alert went out."""
    receiver = WebhookReceiver()
    async with serve(receiver.app()) as hook:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/hook")
        migrate(env)
        services = {name: ServiceProcess(name, env, tmp_path) for name in APPS if name != "console"}
        console_env = {
            **env,
            "VITALS_CONSOLE_SCORING_URL": services["scoring"].url,
            "VITALS_CONSOLE_ALERTS_URL": services["alerts"].url,
        }
        services["console"] = ServiceProcess("console", console_env, tmp_path)
        for service in services.values():
            service.start()
        try:
            for service in services.values():
                await service.wait_ready()
            async with httpx.AsyncClient(base_url=services["ingest"].url) as client:
                events = [UNPAID_PAST_GRACE, native_usage_json(account_id="calm")]
                posted = await client.post("/v1/events", json={"events": events})
            assert posted.status_code == 202, posted.text

            async def delivered() -> bool:
                return bool(receiver.received)

            await wait_for(delivered, 60, "the alert at the webhook")
            yield services
        finally:
            for service in services.values():
                service.kill()


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
async def test_the_running_services_metrics_pass_promtool(
    promtool: str, running_services: dict[str, ServiceProcess]
) -> None:
    own_samples = {
        "ingest": 'vitals_ingest_events_accepted_total{source="native"}',
        "scoring": "vitals_scoring_events_applied_total",
        "alerts": "vitals_alerts_deliveries_total{",
        "console": 'vitals_http_requests_total{code="200",method="GET",route="/readyz"}',
    }
    for name, service in running_services.items():
        async with httpx.AsyncClient(base_url=service.url) as client:
            response = await client.get("/metrics")

        assert response.status_code == 200
        assert own_samples[name] in response.text, f"{name}: {own_samples[name]} missing"
        assert _lint(promtool, response.content) == "", f"{name}'s /metrics"
