"""A refused request said in people's words: "tier must be one of S, A, B, C", not the
API's "invalid request: query.tier.0". Pure: the problems' fields in, a sentence out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

QUOTED = re.compile(r"'([^']*)'")
WHERE = frozenset({"query", "body", "path", "header", "cookie", "form"})
MOST = 3  # problems said; a page is not a list


def field_of(loc: Sequence[object]) -> str:
    """The parameter a problem is about: ``query.tier.0`` is ``tier``."""
    names = [str(p) for p in loc if str(p) not in WHERE and not str(p).isdigit()]
    return names[0] if names else "the request"


def said(problem: Mapping[str, object]) -> str:
    """One problem as a sentence about its field."""
    loc = problem.get("loc")
    field = field_of(loc if isinstance(loc, list | tuple) else [])
    kind = str(problem.get("type", ""))
    message = str(problem.get("message", problem.get("msg", "")))
    choices = QUOTED.findall(message)
    if kind in ("enum", "literal_error") and choices:
        return f"{field} must be one of {', '.join(choices)}"
    if kind == "missing":
        return f"{field} is missing"
    if message.startswith("Input should be "):
        return f"{field} should be {message.removeprefix('Input should be ')}"
    if message.startswith("String should have "):
        return f"{field} should have {message.removeprefix('String should have ')}"
    return f"{field}: {message[:1].lower()}{message[1:]}" if message else f"{field} is not valid"


def sentence(problems: Iterable[Mapping[str, object]]) -> str | None:
    """Every problem's sentence, joined; None when there is none."""
    found = list(problems)
    parts = [said(p) for p in found[:MOST]]
    if len(found) > MOST:
        parts.append(f"and {len(found) - MOST} more")
    return "; ".join(parts) or None
