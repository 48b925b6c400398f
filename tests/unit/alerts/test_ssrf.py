import ipaddress

import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from services.alerts.ssrf import TargetPolicy, TargetRefused, guarded_client, refusal
from tests.support.servers import serve

DEFAULT = TargetPolicy.build(allow_http=False, allow=[])


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("172.16.5.4", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("100.64.0.1", "not a public address"),
        ("0.0.0.0", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("224.0.0.1", "a multicast address"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_are_targets(address: str, problem: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "only https targets are allowed"),
        ("ftp://hooks.example.com/x", "scheme 'ftp' is not allowed"),
        ("https://169.254.169.254/latest", "a cloud metadata address"),
        ("https://127.0.0.1:8080/hook", "a loopback address"),
        ("https://[::1]/hook", "a loopback address"),
    ],
)
def test_the_default_policy_refuses(url: str, message: str) -> None:
    with pytest.raises(TargetRefused, match=message):
        DEFAULT.check_url(url)


def test_allow_lists_open_exactly_what_they_name() -> None:
    policy = TargetPolicy.build(
        allow_http=False,
        allow=["127.0.0.1", "10.0.0.0/8", "relay.internal"],
        trusted_urls=["http://hooks.local:9000/x"],
    )

    policy.check_url("https://127.0.0.1/hook")
    policy.check_url("https://10.9.8.7/hook")
    policy.check_url("http://hooks.local:9000/other")  # trusted: http and any address
    policy.check_address("relay.internal", ipaddress.ip_address("192.168.1.1"))
    with pytest.raises(TargetRefused):
        policy.check_url("https://192.168.1.1/hook")
    with pytest.raises(TargetRefused, match="only https"):
        policy.check_url("http://127.0.0.1/hook")


async def test_names_are_checked_when_resolved_at_connect_time() -> None:
    policy = TargetPolicy.build(allow_http=True, allow=[])
    async with serve(_ok_app()) as url, guarded_client(policy, 5, "test") as client:
        port = url.rsplit(":", 1)[1]
        with pytest.raises(TargetRefused, match="localhost resolves to"):
            await client.post(f"http://localhost:{port}/")
        allowed = TargetPolicy.build(allow_http=True, allow=["127.0.0.1", "::1"])
        async with guarded_client(allowed, 5, "test") as open_client:
            response = await open_client.post(f"http://localhost:{port}/")

    assert response.status_code == 200


async def test_redirects_are_not_followed() -> None:
    policy = TargetPolicy.build(allow_http=True, allow=["127.0.0.1"])
    async with serve(_ok_app()) as url, guarded_client(policy, 5, "test") as client:
        response = await client.post(f"{url}/moved")

    assert response.status_code == 307


def _ok_app() -> FastAPI:
    app = FastAPI()

    @app.post("/")
    async def ok() -> Response:
        return Response(status_code=200)

    @app.post("/moved")
    async def moved() -> Response:
        return RedirectResponse("http://169.254.169.254/latest/meta-data", status_code=307)

    return app
