"""Reading Segment history: a call's receipt time, and lines that cannot be used."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from services.backtest.sources import Intake, Memory, segment_events
from services.ingest.domain import Limits


def _track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": "u1",
        "event": "Report Exported",
        "properties": {"account_id": "acme"},
        **fields,
    }


def _read(tmp_path: Path, *calls: dict[str, Any]) -> tuple[list[str], Intake]:
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b"".join(orjson.dumps(call) + b"\n" for call in calls))
    intake = Intake()
    timed = segment_events(path, intake, Limits(), Memory())
    return [event.event_id for _, _, event in timed], intake


def test_a_call_is_received_at_its_first_usable_time(tmp_path: Path) -> None:
    stamp = "2026-01-05T07:00:00Z"
    calls = [
        _track("m1", receivedAt="2026-01-05T07:00:02+00:00", timestamp=stamp),
        _track("m2", receivedAt="soon", sentAt="2026-01-05T07:00:01Z", timestamp=stamp),
        _track("m3", receivedAt=17, timestamp=stamp),
        _track("m4", originalTimestamp=stamp),
    ]

    ids, intake = _read(tmp_path, *calls)

    assert (ids, intake.rejected) == (["m1", "m2", "m3", "m4"], {})


def test_times_past_the_range_of_dates_refuse_the_call_not_the_run(tmp_path: Path) -> None:
    calls = [
        _track("m1", timestamp="9999-12-31T23:59:59-05:00"),
        _track(
            "m2",
            receivedAt="2026-01-05T07:00:00Z",
            sentAt="9999-01-01T00:00:00Z",
            timestamp="0001-01-01T00:00:00Z",
        ),
        _track("m3", timestamp="2026-01-05T07:00:00Z"),
    ]

    ids, intake = _read(tmp_path, *calls)

    assert (ids, intake.rejected) == (["m3"], {"invalid_event": 2})


def test_a_call_waits_for_its_group_call_and_one_past_its_wait_is_refused(
    tmp_path: Path,
) -> None:
    def call(kind: str, user: str, message_id: str, at: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "userId": user, "messageId": message_id, "timestamp": at, **fields}

    calls = [
        call("identify", "u1", "i1", "2026-01-05T07:00:00Z"),
        call("identify", "u2", "i2", "2026-01-05T07:00:00Z"),
        call("identify", "u3", "i3", "2026-01-05T07:00:00Z"),
        call("group", "u1", "g1", "2026-01-05T08:00:00Z", groupId="acme"),
        call("group", "u2", "g2", "2026-01-13T07:00:00Z", groupId="globex"),
    ]
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in calls))
    intake, memory = Intake(), Memory(wait=timedelta(days=7))

    timed = list(segment_events(path, intake, Limits(), memory))

    assert [(e.event_id, e.account_id) for _, _, e in timed] == [
        ("g1", "acme"),
        ("i1", "acme"),
        ("g2", "globex"),
    ]
    assert (intake.rejected, memory.never_grouped()) == ({"unknown_account": 1}, 1)
