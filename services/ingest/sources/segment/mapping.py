"""Segment's HTTP Tracking API spec mapped to normalised events. Pure.

- ``group``: account traits; ``groupId`` is the account. It also records the
  user's account for later calls without one.
- ``identify``: user traits, on the user's account.
- ``track``, ``page``, ``screen``: usage. The account comes from
  ``context.groupId``, ``properties.account_id``, ``properties.groupId`` or the
  message's ``groupId``, else from the last ``group`` call seen for the user.
- ``messageId`` is the ``event_id``; with ``sentAt``, ``timestamp`` is corrected
  for the sender's clock skew as Segment does: ``receivedAt - (sentAt - timestamp)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from services.ingest.domain import (
    BodyRejected,
    Held,
    Item,
    Limits,
    Rejection,
    check_count,
    item_bytes,
    load_json,
    to_event,
    too_large,
)
from services.ingest.reasons import Reason
from shared.events import Event, is_storable_id

CALL_TYPES = ("track", "identify", "group", "page", "screen")
USAGE_TYPES = ("track", "page", "screen")
HELD_TYPES = (*USAGE_TYPES, "identify")  # calls that may wait for their user's group call
BATCH_MAX_BYTES = 500 * 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
CSM_EMAIL_KEYS = ("owner_csm_email", "ownerCsmEmail", "csm_email", "csmEmail")
CSM_SLACK_KEYS = ("owner_csm_slack", "ownerCsmSlack", "csm_slack", "csmSlack")
CSM_EITHER_KEYS = ("owner_csm", "ownerCsm", "csm")

# The adapter's validator itself: the adapter's own method adds a third to every call.
_timestamp = TypeAdapter(AwareDatetime).validator
AccountOf = Callable[[str], str | None]


@dataclass(frozen=True)
class SegmentBody:
    """The messages of a body, batch-level ``context``/``integrations`` merged in."""

    messages: list[object]
    write_key: str | None
    batch: bool


@dataclass
class Mapped:
    items: list[Item]
    grouped: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    """user -> (account, time of its group call): what to remember for later calls."""
    accounts: dict[str, str] = field(default_factory=dict)
    """user -> account, from the group calls mapped."""


def read_body(body: bytes, call_type: str | None, limits: Limits) -> SegmentBody:
    """``call_type`` is the path's type, or None for ``/v1/batch``."""
    document = load_json(body)
    if not isinstance(document, dict):
        problem = "body must be a JSON object"
        raise BodyRejected(Rejection(Reason.invalid_body, problem, redact_write_key(body)))
    write_key = document.get("writeKey") if isinstance(document.get("writeKey"), str) else None
    if call_type is not None:
        call = {k: v for k, v in document.items() if k != "writeKey"}
        return SegmentBody([{**call, "type": call_type}], write_key, batch=False)
    messages = document.get("batch")
    if not isinstance(messages, list) or not messages:
        problem = '"batch" must be a non-empty list of calls'
        raise BodyRejected(Rejection(Reason.invalid_body, problem, redact_write_key(body)))
    check_count(len(messages), body, limits)
    shared = {k: document[k] for k in ("context", "integrations", "sentAt") if k in document}
    return SegmentBody([_merged(m, shared) for m in messages], write_key, batch=True)


WRITE_KEY = re.compile(rb'"writeKey"\s*:\s*"(?:[^"\\]|\\.)*"')


def redact_write_key(body: bytes) -> bytes:
    """The body without its write key, so that no secret reaches the dead-letter topic."""
    return WRITE_KEY.sub(b'"writeKey":"(redacted)"', body)


def _merged(message: object, shared: Mapping[str, object]) -> object:
    if not isinstance(message, dict):
        return message
    merged = dict(message)
    for key in ("context", "integrations"):
        outer, inner = shared.get(key), message.get(key)
        if isinstance(outer, dict):
            merged[key] = {**outer, **inner} if isinstance(inner, dict) else outer
    if "sentAt" not in merged and "sentAt" in shared:
        merged["sentAt"] = shared["sentAt"]
    return merged


def users_to_look_up(messages: Sequence[object]) -> set[str]:
    """Users whose account only a stored ``group`` call can tell."""
    users: set[str] = set()
    for message in messages:
        if isinstance(message, dict) and message.get("type") in HELD_TYPES:
            user = _user(message)
            if user is not None and _explicit_account(message) is None:
                users.add(user)
    return users


def users_grouping(messages: Sequence[object]) -> set[str]:
    """Users of the ``group`` calls among ``messages``: the calls that wait for them may go."""
    return {
        user
        for message in messages
        if isinstance(message, dict)
        and message.get("type") == "group"
        and (user := _user(message)) is not None
    }


def map_messages(
    messages: Sequence[object], known: Mapping[str, str], received_at: datetime, limits: Limits
) -> Mapped:
    """Each message to an item, in order; a ``group`` call informs later ones."""
    # Groups of this batch shadow ``known``, which is only read: no copy of it per call
    # (nor a ChainMap: its lookups run in Python, a few for every call).
    mapped = Mapped([])
    grouped = mapped.accounts

    def account_of(user: str) -> str | None:
        return grouped.get(user) or known.get(user)

    for message in messages:
        item = _map_one(message, account_of, received_at, limits)
        mapped.items.append(item)
        # A group call that became an event names its user's account.
        if isinstance(item, Event) and isinstance(message, dict) and message.get("type") == "group":
            user = _user(message)
            if user is not None:
                grouped[user] = item.account_id
                mapped.grouped[user] = (item.account_id, item.occurred_at)
    return mapped


def settled(
    messages: Sequence[object], mapped: Mapped, received_at: datetime, limits: Limits
) -> list[Item]:
    """``mapped``'s items, with each call refused only for want of its user's account
    held to wait for the user's ``group`` call, or mapped at once when the same batch
    has that call (an ``identify`` before the ``group`` at sign-up)."""
    held = [_held(m, item) for m, item in zip(messages, mapped.items, strict=True)]
    if not mapped.accounts:  # no group call in the batch: nothing held can go yet
        return held
    return map_held(held, mapped.accounts, received_at, limits)


def map_held(
    items: list[Item], accounts: Mapping[str, str], received_at: datetime, limits: Limits
) -> list[Item]:
    """``items`` with each held call whose user's account is in ``accounts`` mapped."""
    found: list[Item] = []
    for item in items:
        if isinstance(item, Held) and item.user_id in accounts:
            found.extend(released([(item.original, received_at)], accounts, limits))
        else:
            found.append(item)
    return found


def released(
    calls: list[tuple[bytes, datetime]], accounts: Mapping[str, str], limits: Limits
) -> list[Item]:
    """Calls that waited for their users' ``group`` calls, mapped now that they came."""
    items: list[Item] = []
    for call, received_at in calls:
        items.extend(map_messages([orjson.loads(call)], accounts, received_at, limits).items)
    return items


def _held(message: object, item: Item) -> Item:
    if not isinstance(item, Rejection) or item.reason is not Reason.unknown_account:
        return item
    if not isinstance(message, dict):  # unknown_account is only ever a call object's
        return item
    # Only identified users wait: anonymous visitors (anonymousId alone) rarely get a
    # group call, and holding every page view for days would only fill the table.
    user, message_id = _text(message.get("userId")), _id(message)
    if user is None or message_id is None or message.get("type") not in HELD_TYPES:
        return item
    if not (is_storable_id(user) and is_storable_id(message_id)):
        return item
    return Held(user, message_id, item.original)


def _map_one(message: object, account_of: AccountOf, received_at: datetime, limits: Limits) -> Item:
    original = item_bytes(message)
    if (oversized := too_large(original, limits)) is not None:
        return oversized
    if not isinstance(message, dict):
        return Rejection(Reason.invalid_event, "a call must be a JSON object", original)
    call_type = message.get("type")
    message_id = _id(message)
    if call_type not in CALL_TYPES:
        text = f"call type {call_type!r} is not one of {', '.join(CALL_TYPES)}"
        return Rejection(Reason.unsupported_type, text, original, event_id=message_id)
    user = _user(message)  # read once: every step below needs it
    problem = _missing_identity(message, call_type, user)
    if problem is not None:
        return Rejection(Reason.invalid_event, problem, original, event_id=message_id)
    try:
        occurred_at = corrected_time(message, received_at)
    except ValidationError as exc:
        text = f"timestamp or sentAt is not an ISO 8601 time with a UTC offset: {exc}"
        return Rejection(Reason.invalid_event, text, original, event_id=message_id)
    except OverflowError:  # sentAt years from timestamp: the corrected time is out of range
        text = "timestamp corrected by sentAt is outside the range of dates"
        return Rejection(Reason.invalid_event, text, original, event_id=message_id)
    account = _account(message, call_type, user, account_of)
    if account is None:
        text = (
            f"no account for user {user!r}: send context.groupId or "
            "properties.account_id, or a group call for this user first"
        )
        return Rejection(Reason.unknown_account, text, original, event_id=message_id)
    common: dict[str, object] = {
        "event_id": message_id,
        "account_id": account,
        "occurred_at": occurred_at,
        "user_id": user,
    }
    return to_event(_fields(message, call_type, common), original, received_at, limits)


def corrected_time(message: Mapping[str, object], received_at: datetime) -> datetime:
    """Event time, moved by the sender's clock skew when ``sentAt`` says what it is."""
    stamp = message.get("timestamp") or message.get("originalTimestamp")
    if stamp is None:
        return received_at
    occurred: datetime = _timestamp.validate_python(stamp)
    sent_at = message.get("sentAt")
    if sent_at is None:
        return occurred
    sent: datetime = _timestamp.validate_python(sent_at)
    return received_at - (sent - occurred)


def _fields(
    message: Mapping[str, object], call_type: str, common: dict[str, object]
) -> dict[str, object]:
    """The event's fields: ``common`` (its ids and time) and those of its call type."""
    properties = _object(message.get("properties"))
    if call_type == "track":
        return {
            **common,
            "kind": "usage",
            "name": message.get("event"),
            "feature": _text(properties.get("feature")),
            "quantity": _number(properties.get("quantity")),
            "properties": properties,
        }
    if call_type in ("page", "screen"):
        name = _text(message.get("name"))
        return {
            **common,
            "kind": "usage",
            "name": f"{call_type}.viewed",
            "feature": name,
            "properties": {**properties, **({"name": name} if name else {})},
        }
    traits = _traits(message)
    if call_type == "identify":
        return {
            **common,
            "kind": "account",
            "name": "user.identified",
            "traits": {},
            "properties": {"user_traits": traits},
        }
    return {
        **common,
        "kind": "account",
        "name": "account.traits",
        "traits": account_traits(traits),
        "billing": _plan_and_seats(traits),
        "properties": {"account_traits": traits},
    }


def account_traits(traits: Mapping[str, object]) -> dict[str, str]:
    """Name, owner CSM (e-mail or Slack handle) and segment from ``group`` traits."""
    email = _first(traits, CSM_EMAIL_KEYS)
    slack = _first(traits, CSM_SLACK_KEYS)
    either = _first(traits, CSM_EITHER_KEYS)
    if either is not None and EMAIL.match(either):
        email = email or either
    elif either is not None:
        slack = slack or either
    found = {
        "name": _text(traits.get("name")),
        "owner_csm_email": email,
        "owner_csm_slack": slack,
        "segment": _first(traits, ("segment", "tier")),
    }
    return {k: v for k, v in found.items() if v is not None}


def _plan_and_seats(traits: Mapping[str, object]) -> dict[str, object] | None:
    plan, seats = traits.get("plan"), traits.get("seats")
    found = {"plan": plan, "seats": seats}
    present = {k: v for k, v in found.items() if v is not None}
    return present or None


def _missing_identity(
    message: Mapping[str, object], call_type: str, user: str | None
) -> str | None:
    if user is None:
        return "a call needs a userId or an anonymousId"
    if call_type == "track" and not _text(message.get("event")):
        return "a track call needs an event name"
    if call_type == "group" and not _text(message.get("groupId")):
        return "a group call needs a groupId"
    return None


def _account(
    message: Mapping[str, object], call_type: str, user: str | None, account_of: AccountOf
) -> str | None:
    if call_type == "group":
        return _text(message.get("groupId"))
    explicit = _explicit_account(message)
    if explicit is not None:
        return explicit
    return account_of(user) if user is not None else None


def _explicit_account(message: Mapping[str, object]) -> str | None:
    context = _object(message.get("context"))
    properties = _object(message.get("properties"))
    for candidate in (
        context.get("groupId"),
        properties.get("account_id"),
        properties.get("groupId"),
        message.get("groupId"),
    ):
        if candidate is not None and (text := _text(candidate)) is not None:
            return text
    if message.get("type") == "identify":
        return _text(_traits(message).get("account_id"))
    return None


def _traits(message: Mapping[str, object]) -> dict[str, object]:
    traits = _object(message.get("traits"))
    return traits or _object(_object(message.get("context")).get("traits"))


def _user(message: Mapping[str, object]) -> str | None:
    return _text(message.get("userId")) or _text(message.get("anonymousId"))


def _id(message: Mapping[str, object]) -> str | None:
    return _text(message.get("messageId"))


def _first(values: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    return next((text for k in keys if (text := _text(values.get(k))) is not None), None)


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str):  # the usual case first: this runs several times a call
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
