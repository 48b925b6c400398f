"""API keys: format, hashing, scopes, expiry, rate limits, the keys file and the CLI."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import pytest
import yaml
from fastapi import Depends, FastAPI
from typer.testing import CliRunner

from services.cli import app as cli
from shared.auth import (
    KEY_PATTERN,
    ApiKey,
    AuthFailure,
    KeyRing,
    KeysFileError,
    Scope,
    allows,
    authenticate,
    entry_yaml,
    generate_key,
    install_auth,
    key_in_query,
    load_keys_file,
    redact_keys,
)
from shared.settings import VitalsSettings
from tests.support.auth import make_keys_file


def _ring(*scopes: Scope, rate: str = "100/second", **entry: object) -> tuple[KeyRing, str]:
    key, generated = generate_key("pipeline", set(scopes))
    return KeyRing([generated.model_copy(update=entry)], rate), key


def test_a_key_is_prefixed_and_only_its_hash_is_kept() -> None:
    key, entry = generate_key("pipeline", {Scope.ingest})

    assert key.startswith(f"vk_{entry.id}_")
    assert len(key) == len("vk_") + 8 + 1 + 32
    assert key not in entry.model_dump_json()


def test_the_right_key_with_the_scope_is_let_in() -> None:
    ring, key = _ring(Scope.ingest, Scope.read)

    assert ring.check(key, Scope.read) == ApiKey(
        "pipeline", key[3:11], frozenset({Scope.ingest, Scope.read})
    )


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [
        (None, 401, "missing_api_key"),
        ("", 401, "missing_api_key"),
        ("not-a-key", 401, "invalid_api_key"),
        ("vk_AAAAAAAA_wrong", 401, "invalid_api_key"),
    ],
)
def test_a_missing_or_unknown_key_is_401(token: str | None, status: int, error: str) -> None:
    ring, _ = _ring(Scope.ingest)

    with pytest.raises(AuthFailure) as refused:
        ring.check(token, Scope.ingest)

    assert (refused.value.status, refused.value.error) == (status, error)
    assert "WWW-Authenticate" in refused.value.headers


def test_a_tampered_secret_is_401() -> None:
    ring, key = _ring(Scope.ingest)

    with pytest.raises(AuthFailure) as refused:
        ring.check(key[:-1] + ("A" if key[-1] != "A" else "B"), Scope.ingest)

    assert refused.value.status == 401


def test_a_key_without_the_scope_is_403() -> None:
    ring, key = _ring(Scope.ingest)

    with pytest.raises(AuthFailure) as refused:
        ring.check(key, Scope.admin)

    assert (refused.value.status, refused.value.error) == (403, "insufficient_scope")
    assert "admin" in refused.value.message


def test_an_expired_key_is_401() -> None:
    ring, key = _ring(Scope.ingest, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    with pytest.raises(AuthFailure) as refused:
        ring.check(key, Scope.ingest)

    assert refused.value.status == 401


def test_a_key_over_its_rate_gets_429_with_retry_after() -> None:
    ring, key = _ring(Scope.ingest, rate="3/minute")

    for _ in range(3):
        ring.check(key, Scope.ingest)
    with pytest.raises(AuthFailure) as refused:
        ring.check(key, Scope.ingest)

    assert (refused.value.status, refused.value.error) == (429, "rate_limited")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60


def test_each_key_has_its_own_rate() -> None:
    first, first_entry = generate_key("first", {Scope.ingest}, rate="1/minute")
    second, second_entry = generate_key("second", {Scope.ingest})
    ring = KeyRing([first_entry, second_entry], "100/minute")

    ring.check(first, Scope.ingest)
    with pytest.raises(AuthFailure):
        ring.check(first, Scope.ingest)
    assert ring.check(second, Scope.ingest) is not None


def test_without_a_keys_file_auth_is_off_except_in_production() -> None:
    assert KeyRing.from_file(None, "1/second", "development").check(None, Scope.admin) is None
    with pytest.raises(KeysFileError, match="VITALS_API_KEYS_FILE"):
        KeyRing.from_file(None, "1/second", "production")


def test_several_keys_are_active_at_once_for_rotation(tmp_path: Path) -> None:
    path, keys = make_keys_file(tmp_path, {"old": [Scope.ingest], "new": [Scope.ingest]})
    ring = KeyRing.from_file(path, "100/second", "production")

    assert {ring.check(key, Scope.ingest).name for key in keys.values()} == {"old", "new"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("keys: [{name: a, id: short, sha256: '00', scopes: [ingest]}]", "keys.0.id"),
        ("keys: [{name: a, id: AAAAAAAA, sha256: " + "0" * 64 + ", scopes: [owner]}]", "scopes"),
        (
            "keys: [{name: a, id: AAAAAAAA, sha256: " + "0" * 64 + ", scopes: [read], rate: lots}]",
            "rate",
        ),
        ("keys: {", "not valid YAML"),
    ],
)
def test_a_broken_keys_file_is_refused_naming_the_field(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(content)

    with pytest.raises(KeysFileError, match=problem):
        load_keys_file(path)


def test_settings_name_a_broken_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys: [{name: a}]")

    with pytest.raises(ValueError, match="api_keys_file"):
        VitalsSettings(api_keys_file=path)


async def test_the_dependency_reads_bearer_basic_and_header_keys(tmp_path: Path) -> None:
    path, keys = make_keys_file(tmp_path, {"reader": [Scope.read]})
    api = FastAPI()
    install_auth(api, KeyRing.from_file(path, "100/second", "test"))

    @api.get("/thing")
    async def thing(
        key: Annotated[ApiKey | None, Depends(authenticate(Scope.read))],
    ) -> dict[str, str]:
        return {"as": key.name if key else ""}

    key = keys["reader"]
    basic = base64.b64encode(f"{key}:".encode()).decode()
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = [
            await client.get("/thing", headers=headers)
            for headers in (
                {"Authorization": f"Bearer {key}"},
                {"Authorization": f"Basic {basic}"},
                {"X-API-Key": key},
                {},
            )
        ]

    assert [a.status_code for a in answers] == [200, 200, 200, 401]
    assert answers[0].json() == {"as": "reader"}
    assert answers[3].json()["error"] == "missing_api_key"


def test_the_cli_prints_a_key_once_and_an_entry_that_lets_it_in(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "pipeline", "--scope", "ingest"])

    assert result.exit_code == 0, result.output
    key = next(w for w in result.stderr.split() if w.startswith("vk_"))
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n" + result.stdout)
    assert yaml.safe_load(path.read_text())["keys"][0]["name"] == "pipeline"
    assert KeyRing.from_file(path, "1/second", "production").check(key, Scope.ingest)


def test_requests_without_a_valid_key_are_limited_per_address() -> None:
    key, entry = generate_key("pipeline", {Scope.read})
    ring = KeyRing([entry], "100/second", unauthenticated_rate="2/minute")

    for token in (None, "vk_unknown1_x"):
        with pytest.raises(AuthFailure) as refused:
            ring.check(token, Scope.read, "10.0.0.1")
        assert refused.value.status == 401
    with pytest.raises(AuthFailure) as limited:
        ring.check(None, Scope.read, "10.0.0.1")
    with pytest.raises(AuthFailure) as elsewhere:
        ring.check(None, Scope.read, "10.0.0.2")

    assert (limited.value.status, limited.value.error) == (429, "rate_limited")
    assert 1 <= int(limited.value.headers["Retry-After"]) <= 60
    assert elsewhere.value.status == 401
    assert ring.check(key, Scope.read, "10.0.0.1") is not None  # a valid key is not held up


KEY = "vk_Ab3dEf7h_" + "x9" * 16  # the format generate_key makes, fixed for test ids


@pytest.mark.parametrize(
    ("query", "has_key"),
    [
        ("api_key=abc", True),
        ("API-KEY=abc", True),
        ("writeKey=abc", True),
        ("a=1&token=", True),
        (f"q={KEY}", True),
        ("api%5Fkey=abc", True),
        ("owner=kim&limit=5", False),
        ("account_id=vk_team_1", False),
    ],
)
def test_keys_in_a_query_string_are_recognised(query: str, has_key: bool) -> None:
    assert key_in_query(query) is has_key


def test_keys_in_a_logged_request_line_are_redacted() -> None:
    assert KEY_PATTERN.fullmatch(KEY) and KEY_PATTERN.fullmatch(generate_key("x", {Scope.read})[0])
    line = f"/v1/accounts?limit=5&api_key=abc&q=x%20{KEY}"

    assert redact_keys(line) == "/v1/accounts?limit=5&api_key=(redacted)&q=(redacted)"
    assert redact_keys(f"/v1/{KEY}") == "/v1/(redacted)"
    assert redact_keys("/v1/accounts?account_id=vk_team_1") == "/v1/accounts?account_id=vk_team_1"


def test_the_unauthenticated_rate_comes_from_the_settings(tmp_path: Path) -> None:
    _, entry = generate_key("pipeline", {Scope.read})
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("keys:\n" + entry_yaml(entry))
    settings = VitalsSettings(api_keys_file=keys_file, api_unauthenticated_rate_limit="1/minute")
    ring = settings.keyring()

    with pytest.raises(AuthFailure) as first:
        ring.check(None, Scope.read, "10.0.0.9")
    with pytest.raises(AuthFailure) as second:
        ring.check(None, Scope.read, "10.0.0.9")

    assert (first.value.status, second.value.status) == (401, 429)


def test_admin_keys_may_act_but_read_keys_may_not() -> None:
    assert allows(frozenset({Scope.read, Scope.act}), Scope.act)
    assert allows(frozenset({Scope.admin}), Scope.act)
    assert not allows(frozenset({Scope.read}), Scope.act)
    assert not allows(frozenset({Scope.act}), Scope.admin)
