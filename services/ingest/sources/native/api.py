"""``POST /v1/events``: the native shape, one event or a batch, partly accepted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from services.ingest.access import require_ingest_key
from services.ingest.body import JSON, media_type
from services.ingest.domain import Limits, Parsed, Rejection
from services.ingest.http_intake import Parser, Received, Refused, item_error, refused_response
from services.ingest.intake import Submitted
from services.ingest.openapi import BodyModels
from services.ingest.routes import Context
from services.ingest.schemas import EventBatchIn, EventIn, IngestAccepted
from services.ingest.sources.cloudevents import mapping as cloud_events
from services.ingest.sources.cloudevents.schemas import CloudEventBatchIn, CloudEventIn
from services.ingest.sources.native.mapping import parse_native
from shared.auth import ApiKey
from shared.http import Problem, problem_response

CHANNELS = {
    JSON: "native",
    cloud_events.STRUCTURED: "cloudevents",
    cloud_events.BATCH: "cloudevents",
}

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "Malformed JSON, or not an event nor a batch (`error` names the reason)",
        401: "No API key, or not a valid one (`Authorization: Bearer vk_...` or `X-API-Key`)",
        403: "The API key lacks the `ingest` scope",
        413: "Body, batch or the single event too large",
        415: "Not one of the media types below (or an unsupported Content-Encoding)",
        422: "The single posted event is invalid; `details` names each field",
        429: "Rate limit of this API key reached; see Retry-After",
        503: "Broker unavailable: nothing stored, retry with the same event ids",
    }.items()
}

DESCRIPTION = """\
Body: one event, or `{"events": [...]}` (at most 2,500 events and 512 KiB per request,
32 KiB per event; gzip Content-Encoding accepted).

In a batch, valid events are accepted and invalid ones are rejected one by one: each
rejected item is listed in `errors` with its `index` (from 0) and a machine-readable
`reason`, and is sent to the dead-letter topic. A repeated `event_id` (already stored,
or twice in one request) is counted in `duplicates` and stored once.

202 means the broker acknowledged every new event and every dead letter (acks=all).
A single posted event that is invalid is answered 422 with each field named.

CloudEvents 1.0 in structured mode are accepted too: `application/cloudevents+json`
(one event) or `application/cloudevents-batch+json` (a JSON array; errors by index as
above). `data` is a native event; from the envelope come `event_id` (`source#id`),
`name` (`type`), `occurred_at` (`time`), `account_id` (the `accountid` extension) when
`data` leaves them out, and `kind` defaults to `usage`. Binary mode too: the attributes
as `ce-*` headers, the body (JSON) as `data`, one event per request.
"""


router = APIRouter()
BODIES: BodyModels = {
    "/v1/events": {
        JSON: [EventIn, EventBatchIn],
        cloud_events.STRUCTURED: [CloudEventIn],
        cloud_events.BATCH: [CloudEventBatchIn],
    }
}
MEDIA_TYPES = (JSON, cloud_events.STRUCTURED, cloud_events.BATCH)
STRUCTURED_TYPES = (cloud_events.STRUCTURED, cloud_events.BATCH)
# Binary mode: the body is the event's data, JSON; a sender that leaves
# datacontenttype unset (as the SDKs do by default) sends no Content-Type.
BINARY_MEDIA_TYPES = (JSON, "text/json", "")


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    responses=ERRORS,
    tags=["events"],
    summary="Post one event or a batch",
    description=DESCRIPTION,
)
async def post_events(
    request: Request,
    _key: Annotated[ApiKey | None, Depends(require_ingest_key)],
    ingest: Context,
) -> IngestAccepted | JSONResponse:
    kind = media_type(request)
    binary = kind not in STRUCTURED_TYPES and cloud_events.is_binary(request.headers)
    received = await ingest.http.receive(
        request,
        channel="cloudevents" if binary else CHANNELS.get(kind, "native"),
        media_types=BINARY_MEDIA_TYPES if binary else MEDIA_TYPES,
        parse=_parser(kind, ingest.limits, request.headers if binary else None),
    )
    if isinstance(received, Refused):
        return refused_response(received)
    if not received.batch and received.outcome.rejected:
        return _single_rejected(received.outcome.rejected[0])
    return accepted_body(received)


def _parser(kind: str, limits: Limits, binary: Mapping[str, str] | None) -> Parser:
    """How a body of media type ``kind`` is read (native JSON when not a CloudEvent);
    ``binary``: the headers of a CloudEvent in binary mode, whose body is its data."""

    async def parse(body: bytes, received_at: datetime) -> Parsed:
        if binary is not None:
            return cloud_events.parse_binary(binary, body, received_at, limits)
        if kind in STRUCTURED_TYPES:
            batch = kind == cloud_events.BATCH
            return cloud_events.parse_cloudevents(body, received_at, limits, batch=batch)
        return parse_native(body, received_at, limits)

    return parse


def accepted_body(received: Received) -> IngestAccepted:
    outcome: Submitted = received.outcome
    return IngestAccepted(
        accepted=len(outcome.accepted),
        duplicates=len(outcome.duplicates),
        rejected=len(outcome.rejected),
        event_ids=[outcome.accepted[i] for i in sorted(outcome.accepted)],
        errors=[item_error(i, r) for i, r in sorted(outcome.rejected.items())],
    )


def _single_rejected(rejection: Rejection) -> JSONResponse:
    code = 413 if rejection.reason == "event_too_large" else 422
    details = [dict(d) for d in rejection.details] or None
    return problem_response(code, rejection.reason.value, rejection.message, details)
