from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.domain import BodyRejected, Held, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.segment.mapping import (
    account_traits,
    corrected_time,
    map_messages,
    read_body,
    redact_write_key,
    released,
    settled,
    users_to_look_up,
)
from shared.events import Event, EventKind

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits(max_events=10, max_event_bytes=2048)


def _track(**fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": "m1",
        "userId": "u1",
        "event": "Report Exported",
        "timestamp": NOW.isoformat(),
        **fields,
    }


def _map(*messages: Any, known: dict[str, str] | None = None) -> list[Item]:
    return map_messages(list(messages), known or {}, NOW, LIMITS).items


def _event(item: Item) -> Event:
    assert isinstance(item, Event), item
    return item


def _rejection(item: Item) -> Rejection:
    assert isinstance(item, Rejection), item
    return item


def test_track_is_usage_with_message_id_as_event_id_and_account_from_context() -> None:
    event = _event(
        _map(_track(context={"groupId": "acme"}, properties={"feature": "export", "quantity": 3}))[
            0
        ]
    )

    assert (event.kind, event.name, event.event_id) == (EventKind.usage, "Report Exported", "m1")
    assert (event.account_id, event.user_id, event.feature, event.quantity) == (
        "acme",
        "u1",
        "export",
        3.0,
    )
    assert event.properties == {"feature": "export", "quantity": 3}


@pytest.mark.parametrize(
    "where",
    [
        {"properties": {"account_id": "acme"}},
        {"properties": {"groupId": "acme"}},
        {"groupId": "acme"},
        {"context": {"groupId": "acme"}},
    ],
)
def test_the_account_of_a_track_call_comes_from_any_documented_field(
    where: dict[str, Any],
) -> None:
    assert _event(_map(_track(**where))[0]).account_id == "acme"


def test_without_an_explicit_account_the_users_last_group_call_decides() -> None:
    group = {"type": "group", "messageId": "g", "userId": "u1", "groupId": "beta"}

    from_store = _map(_track(), known={"u1": "acme"})
    from_batch = map_messages([group, _track()], {"u1": "acme"}, NOW, LIMITS)

    assert _event(from_store[0]).account_id == "acme"
    assert _event(from_batch.items[1]).account_id == "beta"
    assert from_batch.grouped == {"u1": ("beta", NOW)}


def test_a_user_with_no_known_account_is_rejected_as_unknown_account() -> None:
    rejection = _rejection(_map(_track())[0])
    assert rejection.reason is Reason.unknown_account
    assert rejection.event_id == "m1"


def test_users_to_look_up_are_those_without_an_explicit_account() -> None:
    messages = [
        _track(userId="a"),
        _track(userId="b", context={"groupId": "x"}),
        {"type": "group", "userId": "c", "groupId": "y"},
        {"type": "identify", "anonymousId": "d"},
        {"type": "page", "userId": "e"},
    ]
    assert users_to_look_up(messages) == {"a", "d", "e"}


def test_group_gives_account_traits_plan_and_seats() -> None:
    group = {
        "type": "group",
        "messageId": "g",
        "userId": "u1",
        "groupId": "acme",
        "timestamp": NOW.isoformat(),
        "traits": {"name": "Acme", "plan": "pro", "seats": 25, "csm": "@jane", "segment": "smb"},
    }

    event = _event(_map(group)[0])

    assert (event.kind, event.account_id, event.name) == (
        EventKind.account,
        "acme",
        "account.traits",
    )
    assert event.traits is not None and event.billing is not None
    assert (event.traits.name, event.traits.owner_csm_slack, event.traits.segment) == (
        "Acme",
        "@jane",
        "smb",
    )
    assert (event.billing.plan, event.billing.seats) == ("pro", 25)


def test_owner_csm_is_an_email_or_a_slack_handle() -> None:
    assert account_traits({"csm": "jane@example.com"}) == {"owner_csm_email": "jane@example.com"}
    assert account_traits({"owner_csm_slack": "U123", "owner_csm_email": "j@x.io"}) == {
        "owner_csm_email": "j@x.io",
        "owner_csm_slack": "U123",
    }


def test_identify_gives_user_traits_on_the_users_account() -> None:
    identify = {"type": "identify", "messageId": "i", "userId": "u1", "traits": {"role": "admin"}}

    event = _event(_map(identify, known={"u1": "acme"})[0])

    assert (event.kind, event.name, event.account_id) == (
        EventKind.account,
        "user.identified",
        "acme",
    )
    assert event.properties == {"user_traits": {"role": "admin"}}


def test_page_and_screen_count_as_usage() -> None:
    page = {"type": "page", "userId": "u1", "name": "Pricing", "properties": {"account_id": "a"}}
    screen = {"type": "screen", "anonymousId": "x", "context": {"groupId": "a"}}

    viewed, shown = (_event(i) for i in _map(page, screen))

    assert (viewed.kind, viewed.name, viewed.feature) == (EventKind.usage, "page.viewed", "Pricing")
    assert (shown.name, shown.user_id) == ("screen.viewed", "x")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_track(userId=None), Reason.invalid_event),
        (_track(event=""), Reason.invalid_event),
        ({"type": "group", "userId": "u"}, Reason.invalid_event),
        (_track(type="alias"), Reason.unsupported_type),
        (_track(timestamp="yesterday", context={"groupId": "a"}), Reason.invalid_event),
        (
            _track(timestamp="0001-01-01T00:00:00Z", sentAt="9999-01-01T00:00:00Z", groupId="a"),
            Reason.invalid_event,
        ),
        (_track(properties={"account_id": "a", "blob": "x" * 3000}), Reason.event_too_large),
        (
            _track(timestamp=(NOW + timedelta(hours=1)).isoformat(), groupId="a"),
            Reason.event_in_future,
        ),
        ("not an object", Reason.invalid_event),
    ],
    ids=[
        "no-user",
        "no-event-name",
        "group-without-id",
        "alias",
        "bad-time",
        "time-corrected-out-of-range",
        "too-large",
        "future",
        "not-object",
    ],
)
def test_unusable_calls_are_rejected_with_their_reason(message: Any, reason: Reason) -> None:
    assert _rejection(_map(message)[0]).reason is reason


def test_sent_at_corrects_the_senders_clock_skew() -> None:
    # The sender's clock is 1 h ahead: it stamped the event 10 s before sending.
    skewed = {"timestamp": "2026-11-22T13:00:00+00:00", "sentAt": "2026-11-22T13:00:10+00:00"}

    assert corrected_time(skewed, NOW) == NOW - timedelta(seconds=10)
    assert corrected_time({"timestamp": "2026-11-22T11:00:00Z"}, NOW) == NOW - timedelta(hours=1)
    assert corrected_time({}, NOW) == NOW


def test_a_batch_merges_its_context_integrations_and_sent_at_into_each_call() -> None:
    body = orjson.dumps(
        {
            "batch": [
                _track(context={"page": "p"}),
                _track(messageId="m2", context={"groupId": "own"}),
            ],
            "context": {"groupId": "shared", "page": "outer"},
            "integrations": {"All": True},
            "sentAt": NOW.isoformat(),
            "writeKey": "vk_secret",
        }
    )

    read = read_body(body, None, LIMITS)

    first, second = (_call(message) for message in read.messages)
    assert read.write_key == "vk_secret" and read.batch
    assert first["context"] == {"groupId": "shared", "page": "p"}
    assert second["context"]["groupId"] == "own"
    assert first["integrations"] == {"All": True} and first["sentAt"] == NOW.isoformat()


def test_a_single_call_takes_its_type_from_the_path_and_hides_the_write_key() -> None:
    read = read_body(orjson.dumps({**_track(type="page"), "writeKey": "vk_s"}), "track", LIMITS)

    (message,) = (_call(message) for message in read.messages)
    assert (message["type"], read.write_key, read.batch) == ("track", "vk_s", False)
    assert "writeKey" not in message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", Reason.malformed_json),
        (b'{"batch": []}', Reason.invalid_body),
        (b'["x"]', Reason.invalid_body),
        (orjson.dumps({"batch": [_track()] * 11}), Reason.too_many_events),
    ],
)
def test_unreadable_batches_are_rejected_whole(body: bytes, reason: Reason) -> None:
    with pytest.raises(BodyRejected) as caught:
        read_body(body, None, LIMITS)
    assert caught.value.rejection.reason is reason


def test_a_write_key_never_reaches_a_dead_letter() -> None:
    body = b'{"batch": [], "writeKey": "vk_abc\\"def", "x": 1}'
    assert redact_write_key(body) == b'{"batch": [], "writeKey":"(redacted)", "x": 1}'
    with pytest.raises(BodyRejected) as caught:
        read_body(body, None, LIMITS)
    assert b"vk_abc" not in caught.value.rejection.original


def _call(message: object) -> dict[str, Any]:
    assert isinstance(message, dict), message
    return message


def _settled(*messages: Any) -> list[Item]:
    calls = list(messages)
    return settled(calls, map_messages(calls, {}, NOW, LIMITS), NOW, LIMITS)


def test_an_identify_before_the_group_call_in_one_batch_reaches_the_account() -> None:
    identify = {"type": "identify", "userId": "u9", "messageId": "i9"}
    group = {"type": "group", "userId": "u9", "groupId": "acme", "messageId": "g9"}

    items = _settled(identify, group)

    assert [(_event(i).event_id, _event(i).account_id) for i in items] == [
        ("i9", "acme"),
        ("g9", "acme"),
    ]


def test_a_call_whose_user_has_no_account_yet_waits_and_is_mapped_when_released() -> None:
    (held,) = _settled(_track(userId="u9", messageId="t9"))
    (no_id,) = _settled({"type": "identify", "userId": "u9"})
    (anonymous,) = _settled(_track(userId=None, anonymousId="a9", messageId="t10"))

    assert isinstance(held, Held) and (held.user_id, held.message_id) == ("u9", "t9")
    assert _rejection(no_id).reason is Reason.unknown_account  # no id to keep it by
    assert _rejection(anonymous).reason is Reason.unknown_account
    (event,) = released([(held.original, NOW)], {"u9": "acme"}, LIMITS)
    assert (_event(event).event_id, _event(event).account_id) == ("t9", "acme")
