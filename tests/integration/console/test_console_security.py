"""What the console refuses and sends, on a real uvicorn server: a key in a URL is
refused and never logged, every answer carries the security headers, the sign-in page
says only what a known code means, and the policy blocks inline script in Chromium."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest

from services.console.views import SIGN_IN_MESSAGES
from tests.integration.console.conftest import BROKEN, KEY, RunningConsole
from tests.support.browser import CspWatch, chromium
from tests.support.servers import wait_for

TWICE_ENCODED = quote("/accounts/" + "".join(f"%{byte:02X}" for byte in KEY.encode()), safe="")
IN_URLS = [  # (method, URL): each way a key can reach the console in a URL
    ("GET", f"/accounts?q={KEY}"),
    ("GET", f"/accounts/{KEY}"),
    ("POST", f"/accounts/{KEY}/overrides/lift"),
    ("GET", f"/sign-in?next={quote(f'/accounts/{KEY}', safe='')}"),
    ("GET", f"/sign-in?next={quote(f'/accounts?q={KEY}', safe='')}"),
    ("GET", f"/sign-in?message={KEY}"),
    ("GET", f"/sign-in?next={TWICE_ENCODED}"),  # hidden from one decoding
]


def _decoded(text: str) -> str:
    while (decoded := unquote(text)) != text:
        text = decoded
    return text


async def test_a_key_in_a_url_is_refused_and_in_no_log_line(
    console: RunningConsole, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with console.signed_in() as signed_in, console.client() as stranger:
        for client in (signed_in, stranger):
            for method, url in IN_URLS:
                refused = await client.request(method, url)
                assert refused.status_code == 400, (method, url, refused.status_code)
                assert "API keys never go in a URL" in refused.text

    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert sum(line.endswith('" 400') for line in access) == 2 * len(IN_URLS), access
    warned = [r for r in caplog.records if "API key in its URL" in r.getMessage()]
    assert len(warned) == 2 * len(IN_URLS)
    for record in caplog.records:
        if record.name == "httpx" and console.url in record.getMessage():
            continue  # this test's own client, logging what it asked for
        logged = _decoded(record.getMessage() + (record.exc_text or ""))
        assert KEY not in logged and KEY[-32:] not in logged, record.getMessage()
    # Nothing of those requests reached the APIs: only the sign-in's check did.
    assert console.apis.seen == [f"{console.apis.seen[0].split('/v1/')[0]}/v1/accounts?limit=1"]


async def test_every_answer_carries_the_security_headers(console: RunningConsole) -> None:
    async with console.signed_in() as client, console.client() as stranger:
        answers = {
            "sign-in page": await stranger.get("/sign-in"),
            "signed out, to sign-in": await stranger.get("/accounts"),
            "page": await client.get("/accounts"),
            "stylesheet": await client.get("/static/console.css"),
            "script": await client.get("/static/vendor/htmx.min.js"),
            "no such asset": await client.get("/static/nothing.js"),
            "no such page": await client.get("/nothing"),
            "bad input": await client.get("/accounts/acme?range=forever"),
            "unknown account": await client.get("/accounts/acme"),
            "key in the URL": await client.get(f"/accounts?q={KEY}"),
            "cross-site form": await client.post(
                "/sign-out", headers={"origin": "https://elsewhere.example"}
            ),
            "failure": await client.get(f"/accounts/{BROKEN}"),
            "liveness": await client.get("/healthz"),
        }

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "sign-in page": 200,
        "signed out, to sign-in": 303,
        "page": 200,
        "stylesheet": 200,
        "script": 200,
        "no such asset": 404,
        "no such page": 404,
        "bad input": 400,
        "unknown account": 404,
        "key in the URL": 400,
        "cross-site form": 403,
        "failure": 500,
        "liveness": 200,
    }
    for name, answer in answers.items():
        _assert_secured(name, answer)


def _assert_secured(name: str, answer: httpx.Response) -> None:
    headers = answer.headers
    assert headers.get("x-frame-options") == "DENY", name
    assert headers.get("x-content-type-options") == "nosniff", name
    assert headers.get("referrer-policy") == "same-origin", name
    policy = dict(
        directive.strip().partition(" ")[::2]
        for directive in headers.get("content-security-policy", "").split(";")
    )
    assert policy.get("default-src") == "'none'", (name, policy)
    assert policy.get("script-src") == "'self'" and policy.get("style-src") == "'self'", name
    assert policy.get("frame-ancestors") == "'none'", name
    assert policy.get("base-uri") == "'none'" and policy.get("form-action") == "'self'", name


async def test_the_sign_in_page_says_only_what_a_known_code_means(
    console: RunningConsole,
) -> None:
    async with console.client() as stranger, console.signed_in() as leaving:
        known = await stranger.get("/sign-in", params={"message": "signed_out"})
        for words in ("Your account is locked: call +1 555 0100", "Signed out."):
            free = await stranger.get("/sign-in", params={"message": words})
            assert free.status_code == 200 and 'role="alert"' not in free.text, words
        redirects = {
            "signed out": await _redirect(leaving, "POST", "/sign-out"),
            "never signed in": await _redirect(stranger, "GET", "/alerts"),
        }
        stranger.cookies.set("vitals_session", "expired")
        redirects["session ended"] = await _redirect(stranger, "GET", "/")
    async with console.signed_in() as revoked:
        console.apis.revoked = True
        redirects["key refused"] = await _redirect(revoked, "GET", "/accounts?tier=A")

    assert "Signed out." in known.text and 'role="alert"' in known.text
    codes = {name: parse_qs(urlsplit(to).query)["message"] for name, to in redirects.items()}
    assert codes == {
        "signed out": ["signed_out"],
        "never signed in": ["sign_in_first"],
        "session ended": ["session_ended"],
        "key refused": ["key_refused"],
    }
    assert parse_qs(urlsplit(redirects["key refused"]).query)["next"] == ["/accounts?tier=A"]
    async with console.client() as client:
        for name, to in redirects.items():
            shown = await client.get(to)
            message = SIGN_IN_MESSAGES[codes[name][0]]
            assert shown.status_code == 200 and message in shown.text, name


async def _redirect(client: httpx.AsyncClient, method: str, url: str) -> str:
    """Where ``url`` sends ``client``."""
    answer = await client.request(method, url)
    assert answer.status_code == 303, (url, answer.status_code)
    return answer.headers["location"]


async def test_a_refused_provider_sign_in_shows_its_reason_in_our_words_only(
    console: RunningConsole,
) -> None:
    lure = "Your account is locked: call +1 555 0100"
    async with console.client() as client:
        denied = await client.get(
            "/sign-in/provider/back", params={"error": "access_denied", "error_description": lure}
        )
        unknown = await client.get("/sign-in/provider/back", params={"error": lure})

    assert denied.status_code == 401 and "failed: access was denied." in denied.text
    assert unknown.status_code == 401 and "identity provider failed." in unknown.text
    assert "555" not in denied.text + unknown.text


async def test_the_policy_blocks_inline_script_and_the_watch_reports_it(
    console: RunningConsole,
) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        watch = CspWatch(console.url)
        await watch.watch(page)
        await page.goto(f"{console.url}/sign-in")
        await watch.assert_clean(page)  # the page's own scripts and styles pass

        inline = "const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        await page.evaluate(f"() => {{ {inline} document.head.append(s); }}")

        async def reported() -> list[str]:
            return watch.violations

        found = await wait_for(reported, 10, "the inline script's violation")
        assert await page.evaluate("() => window.ran") is None
    assert any("script-src" in violation for violation in found), found
