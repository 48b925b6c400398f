"""A refused filter is said in people's words, from the API's 422 problem details."""

from __future__ import annotations

import httpx

from services.console.client import BadInput, _error
from services.console.problems import field_of, sentence

TIER = {
    "loc": ["query", "tier", "0"],
    "message": "Input should be 'S', 'A', 'B' or 'C'",
    "type": "enum",
}


def test_a_bad_tier_says_which_tiers_there_are() -> None:
    assert sentence([TIER]) == "tier must be one of S, A, B, C"


def test_other_problems_name_their_field_not_its_location() -> None:
    limit = {"loc": ["query", "limit"], "message": "Input should be less than or equal to 500"}
    missing = {"loc": ["body", "for"], "message": "Field required", "type": "missing"}

    assert field_of(["query", "tier", 0]) == "tier"
    assert sentence([limit, missing]) == (
        "limit should be less than or equal to 500; for is missing"
    )
    assert sentence([]) is None


def test_the_console_shows_the_words_instead_of_the_apis_location() -> None:
    body = {
        "error": "invalid_request",
        "message": "invalid request: query.tier.0",
        "details": [TIER],
    }
    error = _error("scoring", httpx.Response(422, json=body))

    assert isinstance(error, BadInput)
    assert error.message == "tier must be one of S, A, B, C"


def test_a_problem_without_fields_keeps_its_message() -> None:
    body = {"error": "alert_resolved", "message": "alert 'x' is already resolved"}

    assert _error("alerts", httpx.Response(409, json=body)).message == body["message"]
