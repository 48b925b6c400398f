"""The console's guards as functions: keys found in URLs however encoded, hidden in log
lines, and sign-in messages and provider refusals in the console's own words."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from services.console import security, views
from shared.auth import Scope, generate_key

KEY, _ = generate_key("kim", {Scope.read})
ENCODED = "".join(f"%{byte:02X}" for byte in KEY.encode())  # every character escaped


def test_a_key_is_found_in_a_path_or_query_however_often_it_was_encoded() -> None:
    assert security.holds_key(f"/accounts/{KEY}", "")
    assert security.holds_key("/accounts", f"q={KEY}")
    assert security.holds_key("/accounts", "api_key=anything")  # named as a key
    assert security.holds_key("/sign-in", f"next={quote('/accounts/' + KEY, safe='')}")
    assert security.holds_key("/sign-in", f"next={quote('/accounts/' + ENCODED, safe='')}")
    assert security.holds_key(f"/accounts/{ENCODED}", "")

    assert not security.holds_key("/accounts/vk_team_1", "q=acme&tier=A")
    assert not security.holds_key("/sign-in", "next=%2Faccounts%3Frange%3D1y&message=signed_out")


def test_keys_are_hidden_in_a_request_line_and_an_unreadable_one_entirely() -> None:
    assert security.hide_keys(f"/accounts?q={KEY}&tier=A") == "/accounts?q=(redacted)&tier=A"
    assert security.hide_keys(f"/accounts/{KEY}") == "/accounts/(redacted)"
    twice = f"/sign-in?next={quote('/accounts/' + ENCODED, safe='')}"
    assert security.hide_keys(twice) == security.REDACTED_URL
    assert security.hide_keys("/accounts?q=100%25") == "/accounts?q=100%25"


def test_the_console_s_loggers_hide_keys_in_messages_and_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    security.redact_logs()
    caplog.set_level(logging.INFO)

    logging.getLogger("services.console.routes.sign_in").info(
        "sign-in refused for %r", f"Kim {KEY}"
    )
    logging.getLogger("uvicorn.access").info('"%s %s HTTP/%s" %d', "GET", f"/a/{KEY}", "1.1", 400)
    logging.getLogger("services.console.routes.sign_in").warning(f"a message holding {KEY}")

    assert caplog.messages == [
        "sign-in refused for 'Kim (redacted)'",
        '"GET /a/(redacted) HTTP/1.1" 400',
        "a message holding (redacted)",
    ]


def test_the_sign_in_page_says_what_a_code_means_and_the_provider_s_words_are_not_shown() -> None:
    assert views.SIGN_IN_MESSAGES["signed_out"] == "Signed out."
    assert views.provider_refusal("access_denied") == (
        "Sign-in through the identity provider failed: access was denied."
    )
    for unknown in ("Call +1 555 0100 to unlock your account", None, 3):
        assert views.provider_refusal(unknown) == "Sign-in through the identity provider failed."
