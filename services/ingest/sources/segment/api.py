"""Segment's HTTP Tracking API on Segment's own paths, so Segment's libraries work
unchanged when pointed at Vitals (their ``host`` option)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.access import refused, segment_sender
from services.ingest.body import JSON
from services.ingest.http_intake import Deferred, Parser, Received, Refused, item_error
from services.ingest.intake import Origin, Prepared
from services.ingest.openapi import BodyModels
from services.ingest.reasons import Reason
from services.ingest.routes import Context, IngestContext
from services.ingest.schemas import ItemError
from services.ingest.sources.segment import mapping
from services.ingest.sources.segment.service import Calls, accept
from services.ingest.sources.segment.store import database_store, forgetting
from shared.auth import AuthFailure

CHANNEL = "segment"
# Segment answers 400 to every body it cannot take (size, JSON); its libraries
# treat 400 as final, which is right: a retry cannot fix the body.
SEGMENT_STATUSES: dict[Reason, int] = {}


class SegmentCall(BaseModel):
    """One Segment call (see Segment's spec); unknown fields are kept as properties."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(None, description="track, identify, group, page or screen.")
    messageId: str | None = Field(None, description="Becomes event_id: repeats are dropped.")  # noqa: N815
    userId: str | None = None  # noqa: N815
    anonymousId: str | None = None  # noqa: N815
    groupId: str | None = Field(None, description="The account (group calls).")  # noqa: N815
    event: str | None = Field(None, description="Event name (track calls).")
    timestamp: str | None = None
    sentAt: str | None = Field(None, description="Sender's clock at sending: skew is corrected.")  # noqa: N815
    properties: dict[str, object] | None = None
    traits: dict[str, object] | None = None
    context: dict[str, object] | None = None
    writeKey: str | None = Field(None, description="The API key, when not sent as Basic auth.")  # noqa: N815


class SegmentBatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[SegmentCall] = Field(min_length=1)
    context: dict[str, object] | None = Field(None, description="Merged into every call.")
    integrations: dict[str, object] | None = Field(None, description="Merged into every call.")
    sentAt: str | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815


class SegmentError(BaseModel):
    """An error as Segment answers it, which its libraries read (decision 0013)."""

    success: bool = False
    code: str = Field(description="Machine-readable, as `error` of a Problem.")
    message: str


class SegmentAccepted(BaseModel):
    success: bool = True
    accepted: int
    duplicates: int
    rejected: int
    waiting: int = Field(
        0,
        description="Calls kept until their user's group call names the account (an "
        "identify before the group call); published then.",
    )
    errors: list[ItemError] = Field(default_factory=list)


router = APIRouter()
BODIES: BodyModels = {
    **{f"/v1/{t}": {JSON: [SegmentCall]} for t in mapping.CALL_TYPES},
    "/v1/batch": {JSON: [SegmentBatch]},
}


def _parser(call_type: str | None, ingest: IngestContext, origin: Origin) -> Parser:
    """Segment's protocol for one request (``service.accept``), on the ingest database
    in the transaction that claims the request's event ids."""

    async def parse(body: bytes, received_at: datetime) -> Deferred:
        read = mapping.read_body(body, call_type, ingest.limits)
        calls = [Calls(read.messages, received_at)]

        async def prepare(session: AsyncSession) -> Prepared:
            async with database_store(session, read.messages, ingest.segment) as store:
                accepted = accept(calls, store, ingest.limits)
            (own,) = accepted.items
            items = [(item, origin) for item in [*own, *accepted.released]]
            return Prepared(items, forgetting(accepted))

        return Deferred(len(read.messages), read.batch, prepare)

    return parse


def _route(call_type: str | None) -> None:
    """``POST /v1/<call type>``, or ``/v1/batch`` for None."""

    async def post_call(request: Request, ingest: Context) -> SegmentAccepted | JSONResponse:
        http = ingest.http
        most = mapping.BATCH_MAX_BYTES if call_type is None else ingest.limits.max_event_bytes
        try:
            body = await segment_sender(request, lambda: http.read(request, (JSON,), most))
        except AuthFailure as failure:
            return segment_error(refused(failure))
        received = await http.receive(
            request,
            channel=CHANNEL,
            media_types=(JSON,),
            parse=_parser(call_type, ingest, Origin.http(request.url.path)),
            max_bytes=most,
            redact=mapping.redact_write_key,
            statuses=SEGMENT_STATUSES,
            body=body,
        )
        if isinstance(received, Refused):
            return segment_error(received)
        return _accepted(received)

    router.post(
        f"/v1/{call_type or 'batch'}",
        response_model=SegmentAccepted,
        tags=["segment"],
        summary=f"Segment {call_type or 'batch'} call",
        name=f"post_{call_type or 'batch'}",
        description=(
            "Segment's HTTP Tracking API. Auth: the API key as HTTP Basic username with an "
            "empty password, or `writeKey` in the body. 200 once the broker acknowledged; "
            "calls that cannot be used are listed in `errors` and dead-lettered."
        ),
        responses={
            code: {"model": SegmentError, "description": text}
            for code, text in {
                400: "Malformed JSON or body too large (as Segment)",
                401: "No API key (none in the headers nor as `writeKey` of a JSON body)",
                403: "The API key lacks the `ingest` scope",
                429: "Rate limit reached; see Retry-After",
                503: "Nothing stored; retry",
            }.items()
        },
    )(post_call)


for _call_type in (*mapping.CALL_TYPES, None):
    _route(_call_type)


def _accepted(received: Received) -> SegmentAccepted:
    outcome = received.outcome
    return SegmentAccepted(
        accepted=len(outcome.accepted),
        duplicates=len(outcome.duplicates),
        rejected=len(outcome.rejected),
        waiting=len(outcome.held),
        errors=[item_error(i, r) for i, r in sorted(outcome.rejected.items())],
    )


def segment_error(refused: Refused) -> JSONResponse:
    """Segment's libraries read ``code`` and ``message`` from an error body."""
    body = SegmentError(code=refused.error, message=refused.message)
    return JSONResponse(body.model_dump(), refused.status, headers=refused.headers)
