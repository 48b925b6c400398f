"""VITALS_TRUSTED_PROXIES: its validation, the uvicorn options made from it, and that
`vitals serve` (one process or several) runs uvicorn with them."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from services.cli import app as cli
from shared.serving import ServerOptionsError, server_options
from shared.settings import VitalsSettings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VITALS_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)


def test_no_proxy_is_trusted_by_default() -> None:
    assert VitalsSettings().trusted_proxies == []


def test_the_variable_is_a_comma_separated_list_of_addresses_and_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.4.7,,::1 ,fd00::/8")

    assert VitalsSettings().trusted_proxies == [
        ip_network("10.0.0.0/8"),
        ip_network("192.168.4.7/32"),
        ip_network("::1/128"),
        ip_network("fd00::/8"),
    ]


def test_an_empty_variable_trusts_no_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", "")

    assert VitalsSettings().trusted_proxies == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "'*' would let every client choose its own address"),
        ("10.0.0.0/8,ingress-nginx", "'ingress-nginx' is not an IP address or a CIDR network"),
        ("10.0.0.1/8", "'10.0.0.1/8' has host bits set: the network is 10.0.0.0/8"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or a CIDR network"),
        ("127.0.0.1:8080", "'127.0.0.1:8080' is not an IP address or a CIDR network"),
        ('["10.0.0.0/8"]', "is not an IP address or a CIDR network"),
    ],
)
def test_a_bad_entry_is_refused_saying_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", value)

    with pytest.raises(ValidationError) as refused:
        VitalsSettings()

    [error] = refused.value.errors()
    assert error["loc"] == ("trusted_proxies",)
    assert message in error["msg"]


def test_a_list_is_taken_in_code_too() -> None:
    settings = VitalsSettings(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])

    assert settings.trusted_proxies == [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
    with pytest.raises(ValidationError, match="has host bits set"):
        VitalsSettings(trusted_proxies=["10.1.0.0/8"])


def test_the_options_turn_proxy_headers_off_without_proxies_and_name_them_otherwise() -> None:
    assert server_options(VitalsSettings(), environ={}) == {
        "proxy_headers": False,
        "forwarded_allow_ips": [],
    }
    trusting = VitalsSettings(trusted_proxies="10.0.0.0/8,127.0.0.1,::1,fd00::/8")
    assert server_options(trusting, environ={}) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"],
    }


def test_uvicorns_own_variable_is_refused_not_ignored() -> None:
    with pytest.raises(ServerOptionsError, match="VITALS_TRUSTED_PROXIES") as refused:
        server_options(VitalsSettings(), environ={"FORWARDED_ALLOW_IPS": "*"})
    assert "FORWARDED_ALLOW_IPS=* is set" in str(refused.value)
    # Set but empty asks for nothing.
    assert not server_options(VitalsSettings(), environ={"FORWARDED_ALLOW_IPS": " "})[
        "proxy_headers"
    ]


async def _client_seen(options: dict[str, Any], client: str, forwarded: str) -> str:
    """The client address an app behind uvicorn's configured middleware sees for a
    request from ``client`` that says ``X-Forwarded-For: forwarded``."""
    seen: list[str] = []

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        seen.append(scope["client"][0])

    config = uvicorn.Config(app, log_config=None, **options)
    config.load()
    scope = {
        "type": "http",
        "client": (client, 50000),
        "headers": [(b"x-forwarded-for", forwarded.encode())],
    }

    async def nothing() -> Any:
        return {}

    async def ignore(_message: Any) -> None:
        return None

    await config.loaded_app(scope, nothing, ignore)
    [address] = seen
    return address


async def test_uvicorn_configured_with_the_options_believes_only_the_named_proxies() -> None:
    default = dict(server_options(VitalsSettings(), environ={}))
    trusting = dict(server_options(VitalsSettings(trusted_proxies="10.0.0.0/8"), environ={}))

    # uvicorn's own default believes 127.0.0.1; the default options believe no one.
    assert await _client_seen({}, "127.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert await _client_seen(default, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert await _client_seen(trusting, "10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert await _client_seen(trusting, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
    # What a client put in front of the proxy's own entry is not believed either.
    assert await _client_seen(trusting, "10.1.2.3", "198.51.100.1, 203.0.113.9") == "203.0.113.9"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """What `vitals serve` gives uvicorn.run, instead of running it."""
    for service in ("INGEST", "SCORING", "ALERTS"):
        monkeypatch.setenv(f"VITALS_{service}_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    calls: list[dict[str, Any]] = []

    def run(app: object, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", run)  # as services.cli calls it
    return calls


@pytest.mark.parametrize("workers", ["1", "3"])
def test_vitals_serve_gives_uvicorn_the_options_in_both_modes(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    first = runner.invoke(cli, ["serve", "ingest", "--workers", workers])
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1")
    second = runner.invoke(cli, ["serve", "ingest", "--workers", workers])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    default, trusting = served
    assert (default["proxy_headers"], default["forwarded_allow_ips"]) == (False, [])
    assert (trusting["proxy_headers"], trusting["forwarded_allow_ips"]) == (
        True,
        ["10.0.0.0/8", "127.0.0.1"],
    )
    assert default.get("workers", 1) == int(workers)


def test_vitals_serve_refuses_a_bad_entry_or_uvicorns_variable_before_starting(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", "*")
    bad_entry = runner.invoke(cli, ["serve", "ingest", "--workers", "2"])
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    leftover = runner.invoke(cli, ["serve", "scoring"])

    assert bad_entry.exit_code == 2
    assert "VITALS_TRUSTED_PROXIES: Value error, '*' would let every client" in bad_entry.output
    assert leftover.exit_code == 2
    assert "[scoring] FORWARDED_ALLOW_IPS=10.0.0.0/8 is set" in leftover.output
    assert served == []


def test_config_check_shows_the_proxies_as_the_variable_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VITALS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")

    result = runner.invoke(cli, ["config", "check"])

    assert result.exit_code == 0, result.output
    assert result.output.count("VITALS_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1/32\n") == 4
