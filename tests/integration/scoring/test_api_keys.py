"""API keys on the scoring API: read scope to read, admin scope to override."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.scoring.app import create_app
from shared.auth import Scope
from tests.support.auth import make_keys_file
from tests.support.clock import FakeClock
from tests.support.scoring_service import settings_for, stored_account
from tests.support.servers import serve

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

OPEN = ["/healthz", "/readyz", "/metrics"]


async def test_every_endpoint_but_health_readiness_and_metrics_needs_a_key_with_its_scope(
    kafka: str, scoring_db: str, topics: dict[str, str], tmp_path: Path
) -> None:
    clock = FakeClock()
    keys_file, keys = make_keys_file(
        tmp_path,
        {"csm-board": [Scope.read], "csm-admin": [Scope.admin], "pipeline": [Scope.ingest]},
    )
    settings = settings_for(kafka, scoring_db, topics, api_keys_file=keys_file)
    await stored_account(scoring_db, "acme", clock.now)
    override = {
        "field": "band",
        "value": "red",
        "reason": "renewal call went badly",
        "expires_at": (clock.now + timedelta(days=3)).isoformat(),
        "created_by": "kim@example.com",
    }

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name]}"}

    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        paths = (await api.get("/openapi.json")).json()["paths"]
        routes = [
            (method.upper(), path.replace("{account_id}", "acme"))
            for path, methods in paths.items()
            for method in methods
            if path.startswith("/v1/")
        ]
        assert len(routes) == 11  # the attention list, retention and renewals too
        for method, path in routes:
            missing = await api.request(method, path)
            assert missing.status_code == 401, (method, path)
            assert missing.json()["error"] == "missing_api_key"
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = await api.request(method, path, headers={"X-API-Key": "vk_nothing1_nope"})
            assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_api_key")
            ingest_only = await api.request(method, path, headers=bearer("pipeline"))
            assert ingest_only.status_code == 403, (method, path)
            assert ingest_only.json()["error"] == "insufficient_scope"
        for path in OPEN:
            assert (await api.get(path)).status_code != 401, path

        reads = [path for method, path in routes if method == "GET"]
        for path in reads:
            assert (await api.get(path, headers=bearer("csm-board"))).status_code == 200, path
            assert (await api.get(path, headers=bearer("csm-admin"))).status_code == 403, path
        as_reader = await api.post(
            "/v1/accounts/acme/overrides", json=override, headers=bearer("csm-board")
        )
        created = await api.post(
            "/v1/accounts/acme/overrides", json=override, headers={"X-API-Key": keys["csm-admin"]}
        )
        shown = await api.get("/v1/accounts/acme", headers=bearer("csm-board"))
        lifted = await api.delete(
            "/v1/accounts/acme/overrides",
            params={"by": "kim@example.com", "reason": "call went fine after all"},
            headers=bearer("csm-admin"),
        )
        audit = await api.get("/v1/accounts/acme/overrides", headers=bearer("csm-board"))

    assert (as_reader.status_code, as_reader.json()["error"]) == (403, "insufficient_scope")
    assert created.status_code == 201, created.text
    assert [o["value"] for o in shown.json()["overrides"]] == ["red"]
    assert (lifted.status_code, lifted.json()) == (200, {"lifted": 1})
    [entry] = audit.json()
    assert (entry["created_by"], entry["created_with_key"]) == ("kim@example.com", "csm-admin")
    assert (entry["lifted_by"], entry["lifted_with_key"]) == ("kim@example.com", "csm-admin")
    assert entry["lift_reason"] == "call went fine after all" and not entry["active"]
