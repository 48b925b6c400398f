"""CloudEvents 1.0 in JSON (structured mode, one event or a batch; binary mode, one event
with its attributes in ``ce-*`` headers) as native events. Pure.

The envelope is checked by the CloudEvents SDK (required attributes, types,
extension names); ``data`` is a native event, whose missing fields the envelope
fills: ``event_id`` from ``source`` and ``id`` (together unique, per the spec),
``name`` from ``type``, ``occurred_at`` from ``time`` (else the time of receipt),
``account_id`` from the ``accountid`` extension, ``kind`` usage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import unquote

import orjson
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from services.ingest.domain import (
    BodyRejected,
    Item,
    Limits,
    Parsed,
    Rejection,
    check_count,
    item_bytes,
    load_json,
    to_event,
    too_large,
)
from services.ingest.reasons import Reason
from shared.events import MAX_ID_LENGTH

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
ACCOUNT_EXTENSION = "accountid"
JSON_DATA = ("application/json", "text/json")
HEADER_PREFIX = "ce-"
"""Binary mode: each attribute is a header ``ce-<name>``; the body is ``data``."""
DATA_KEYS = ("data", "data_base64")

_time = TypeAdapter(AwareDatetime)


def parse_cloudevents(body: bytes, received_at: datetime, limits: Limits, *, batch: bool) -> Parsed:
    """``batch``: the body is a JSON array of events (``application/cloudevents-batch+json``)."""
    document: object = load_json(body)
    if not batch:
        if not isinstance(document, dict):
            message = "a structured CloudEvent must be a JSON object"
            raise BodyRejected(Rejection(Reason.invalid_body, message, body))
        return Parsed([cloud_event_item(document, received_at, limits, body)], batch=False)
    if not isinstance(document, list) or not document:
        message = "a CloudEvents batch must be a non-empty JSON array of events"
        raise BodyRejected(Rejection(Reason.invalid_body, message, body))
    check_count(len(document), body, limits)
    return Parsed([cloud_event_item(e, received_at, limits) for e in document])


def is_binary(headers: Mapping[str, str]) -> bool:
    """Whether a request not of a CloudEvents media type carries one in binary mode."""
    return any(name.lower().startswith(HEADER_PREFIX) for name in headers)


def parse_binary(
    headers: Mapping[str, str], body: bytes, received_at: datetime, limits: Limits
) -> Parsed:
    """One CloudEvent in binary content mode (the HTTP binding, section 3.1): the
    attributes from the ``ce-*`` headers (percent-decoded), ``datacontenttype`` from
    Content-Type, the body as ``data``; then mapped exactly as a structured event."""
    envelope: dict[str, object] = {}
    for name, value in headers.items():
        lowered = name.lower()
        attribute = lowered.removeprefix(HEADER_PREFIX)
        if attribute != lowered and attribute and attribute not in DATA_KEYS:
            envelope[attribute] = unquote(value)
        elif lowered == "content-type" and value:
            envelope["datacontenttype"] = value
    envelope["data"] = load_json(body)
    return Parsed([cloud_event_item(envelope, received_at, limits, binary=True)], batch=False)


def cloud_event_item(
    envelope: object,
    received_at: datetime,
    limits: Limits,
    original: bytes | None = None,
    *,
    binary: bool = False,
) -> Item:
    """``binary``: the attributes came as headers, and their problems name the headers."""
    original = original if original is not None else item_bytes(envelope)
    if (oversized := too_large(original, limits)) is not None:
        return oversized
    if not isinstance(envelope, dict):
        return Rejection(Reason.invalid_event, "a CloudEvent must be a JSON object", original)
    problems = _envelope_problems(envelope)
    if problems:
        if binary:
            problems = [{**p, "field": _header(p["field"])} for p in problems]
        names = ", ".join(p["field"] for p in problems)
        mode = " in binary mode" if binary else ""
        message = f"not a valid CloudEvent 1.0{mode}: {names}"
        return Rejection(Reason.invalid_event, message, original, tuple(problems))
    data = _data(envelope)
    if not isinstance(data, dict):
        message = "data must be a JSON object: a Vitals event (account_id, kind, name, ...)"
        return Rejection(Reason.invalid_event, message, original, event_id=_event_id(envelope))
    return to_event(_fields(envelope, data, received_at), original, received_at, limits)


def cloud_event_id(source: str, event_id: str) -> str:
    """One id for ``source`` + ``id``, which the spec makes unique together."""
    joined = f"{source}#{event_id}"
    if len(joined) <= MAX_ID_LENGTH:
        return joined
    return f"ce:{hashlib.sha256(joined.encode()).hexdigest()}"


def _envelope_problems(envelope: Mapping[str, object]) -> list[dict[str, str]]:
    attributes = {k: v for k, v in envelope.items() if k not in DATA_KEYS}
    problems: list[dict[str, str]] = []
    if "id" not in attributes:  # the SDK would make one up
        problems.append({"field": "id", "reason": "required"})
    if "time" in attributes:
        try:
            attributes["time"] = _time.validate_python(attributes["time"])
        except ValidationError:
            problems.append({"field": "time", "reason": "an RFC 3339 time with an offset"})
            del attributes["time"]
    content_type = attributes.get("datacontenttype")
    if isinstance(content_type, str) and not _is_json(content_type):
        problems.append({"field": "datacontenttype", "reason": "data must be JSON"})
    try:
        CloudEvent(attributes)
    except CloudEventValidationError as exc:
        problems += [
            {"field": name, "reason": "; ".join(str(e) for e in errors)}
            for name, errors in exc.errors.items()
        ]
    return problems


def _data(envelope: Mapping[str, object]) -> object:
    if "data_base64" not in envelope:
        return envelope.get("data")
    encoded = envelope["data_base64"]
    if not isinstance(encoded, str):
        return None
    try:
        return orjson.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None


def _fields(
    envelope: Mapping[str, object], data: Mapping[str, object], received_at: datetime
) -> dict[str, object]:
    defaults = {
        "event_id": _event_id(envelope),
        "name": envelope["type"],
        "occurred_at": envelope.get("time") or received_at,
        "kind": "usage",
    }
    account = envelope.get(ACCOUNT_EXTENSION)
    if isinstance(account, str):
        defaults["account_id"] = account
    return {**defaults, **data}


def _event_id(envelope: Mapping[str, object]) -> str | None:
    source, event_id = envelope.get("source"), envelope.get("id")
    if isinstance(source, str) and isinstance(event_id, str) and source and event_id:
        return cloud_event_id(source, event_id)
    return None


def _header(attribute: str) -> str:
    """The header that carries ``attribute`` in binary mode."""
    return "content-type" if attribute == "datacontenttype" else f"{HEADER_PREFIX}{attribute}"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in JSON_DATA or media.endswith("+json")
