"""Hypothesis strategies of event records, valid and not: ids with control characters,
times out of range, integers past 64 bits, wrong types, nested JSON."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["", " ", "a\x00b", "cafe\u0301", "x" * 250, "\u0085", "acme"])
times = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59Z",
        "2026-11-22T11:00:00Z",
        "2026-11-22T11:00:00",
        "not a time",
    ]
)
integers = st.sampled_from([-(2**63) - 1, -1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 10**16])
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False) | texts | times


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3)


json_values = st.recursive(scalars, _containers, max_leaves=12)
FIELDS = [
    "event_id",
    "account_id",
    "kind",
    "name",
    "occurred_at",
    "received_at",
    "user_id",
    "feature",
    "quantity",
    "properties",
    "billing",
    "traits",
]
billing_values = st.fixed_dictionaries(
    {},
    optional={
        "mrr_minor": integers,
        "amount_minor": integers,
        "seats": integers,
        "currency": st.sampled_from(["USD", "usd", "EURO"]),
        "renewal_date": st.sampled_from(["0001-01-01", "9999-12-31", "2027-01-01", "x"]),
        "plan": texts,
    },
)


def _valid() -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "account_id": "acme",
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": "2026-11-22T11:00:00Z",
        "received_at": "2026-11-22T11:00:00Z",
    }


events = st.builds(
    lambda base, changes, billing: {**base, **changes, **({"billing": billing} if billing else {})},
    st.just(_valid()),
    st.dictionaries(st.sampled_from(FIELDS), json_values | times | texts, max_size=4),
    st.none() | billing_values,
)


def encoded(document: dict[str, Any]) -> bytes | None:
    """``document`` as JSON bytes; None for an integer past 64 bits, which no JSON
    producer writes as a generated dict would hold it."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return None
