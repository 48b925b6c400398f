import ipaddress

import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from services.alerts.delivery.ssrf import TargetPolicy, TargetRefused, guarded_client, refusal
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
    policy.check_url("http://hooks.local:9000/other")  # trusted target: http, any address
    policy.check_address("relay.internal", ipaddress.ip_address("192.168.1.1"))
    policy.check_address("relay.internal", ipaddress.ip_address("192.168.1.1"), 5432)
    with pytest.raises(TargetRefused):
        policy.check_url("https://192.168.1.1/hook")
    with pytest.raises(TargetRefused, match="only https"):
        policy.check_url("http://127.0.0.1/hook")


SHORTHAND = TargetPolicy.build(
    allow_http=False, allow=[], trusted_urls=["http://127.0.0.1:9000/hooks/vitals"]
)


def test_a_trusted_url_opens_its_own_target_whatever_the_path() -> None:
    SHORTHAND.check_url("http://127.0.0.1:9000/hooks/vitals")
    SHORTHAND.check_url("http://127.0.0.1:9000/another/path?x=1")
    SHORTHAND.check_address("127.0.0.1", ipaddress.ip_address("127.0.0.1"), 9000)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8002/v1/accounts", "only https"),  # the scoring API
        ("http://127.0.0.1:5433/", "only https"),  # PostgreSQL
        ("http://127.0.0.1:9092/", "only https"),  # Kafka
        ("http://127.0.0.1/hooks/vitals", "only https"),  # port 80
        ("https://127.0.0.1:9000/hooks/vitals", "only the trusted URL's scheme"),
        ("https://127.0.0.1:8443/", "a loopback address"),
        ("http://localhost:9000/hooks/vitals", "only https"),  # another host name
        ("ftp://127.0.0.1:9000/", "scheme 'ftp' is not allowed"),
    ],
)
def test_a_trusted_url_opens_nothing_else_on_its_host(url: str, message: str) -> None:
    with pytest.raises(TargetRefused, match=message):
        SHORTHAND.check_url(url)


def test_a_trusted_url_opens_nothing_else_even_where_http_is_allowed() -> None:
    policy = TargetPolicy.build(
        allow_http=True, allow=[], trusted_urls=["http://127.0.0.1:9000/hook"]
    )

    for url in ("http://127.0.0.1:8002/", "http://127.0.0.1:9001/hook", "http://[::1]:9000/"):
        with pytest.raises(TargetRefused, match="a loopback address"):
            policy.check_url(url)


def test_connections_open_a_trusted_host_only_on_its_port_and_never_to_smtp() -> None:
    policy = TargetPolicy.build(
        allow_http=True, allow=[], trusted_urls=["http://hooks.internal:9000/hook"]
    )
    private = ipaddress.ip_address("10.0.0.7")

    policy.check_address("hooks.internal", private, 9000)  # an http(s) connection
    with pytest.raises(TargetRefused, match="a private address"):
        policy.check_address("hooks.internal", private, 5432)
    with pytest.raises(TargetRefused, match="a private address"):
        policy.check_address("hooks.internal", private)  # SMTP: no trusted port
    with pytest.raises(TargetRefused, match="only the trusted URL's scheme"):
        policy.check_url("https://hooks.internal:9000/hook")


def test_an_smtp_host_never_shares_a_trusted_urls_exemption() -> None:
    with pytest.raises(TargetRefused, match="a loopback address"):
        SHORTHAND.check_smtp_host("127.0.0.1")
    SHORTHAND.check_smtp_host("smtp.example.com")  # a name: checked once resolved


def test_an_allow_listed_host_stays_open_on_every_port_and_scheme() -> None:
    policy = TargetPolicy.build(
        allow_http=True, allow=["127.0.0.1"], trusted_urls=["http://127.0.0.1:9000/hook"]
    )

    policy.check_url("https://127.0.0.1:9000/hook")
    policy.check_url("http://127.0.0.1:8002/")


def test_a_url_with_a_bad_port_is_refused() -> None:
    with pytest.raises(TargetRefused, match="port"):
        DEFAULT.check_url("https://hooks.example.com:99999/x")


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


async def test_the_client_connects_to_a_trusted_url_and_to_nothing_else_on_its_host() -> None:
    async with serve(_ok_app()) as url, serve(_ok_app()) as other:
        policy = TargetPolicy.build(allow_http=False, allow=[], trusted_urls=[f"{url}/"])
        async with guarded_client(policy, 5, "test") as client:
            trusted = await client.post(f"{url}/")
            with pytest.raises(TargetRefused, match="only https"):
                await client.post(f"{other}/")  # same host, another port
            with pytest.raises(TargetRefused, match="only the trusted URL's scheme"):
                await client.post(url.replace("http://", "https://") + "/")
        smtp_port = int(url.rsplit(":", 1)[1])
        with pytest.raises(TargetRefused, match="a loopback address"):
            await policy.resolve("127.0.0.1", smtp_port, "smtp")

    assert trusted.status_code == 200


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
