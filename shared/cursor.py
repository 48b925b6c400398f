"""Keyset cursors: the last row's sort key and id, opaque to clients (base64 of JSON).
Every list API pages with them; a cursor a client altered is a ValueError."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson

REFUSED = "not a cursor from this API"


def encode_cursor(key: int | datetime, row_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    return base64.urlsafe_b64encode(orjson.dumps([value, row_id])).decode()


def decode_int_cursor(cursor: str) -> tuple[int, str]:
    """A cursor whose key is a number (a score, an MRR)."""
    value, row_id = _parts(cursor)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(REFUSED)
    return value, row_id


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor whose key is an aware time (created or opened at)."""
    value, row_id = _parts(cursor)
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(REFUSED)
    return at, row_id


def _parts(cursor: str) -> tuple[object, str]:
    try:
        value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError(REFUSED) from exc
    if not isinstance(row_id, str):
        raise ValueError(REFUSED)
    return value, row_id
