"""The steps every intake route shares: media type, size limit, parse, hand to the intake.

A body that cannot be read at all is dead-lettered whole; the caller gets the
status to answer with. Nothing here knows an input shape: ``parse`` does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request
from fastapi.responses import JSONResponse

from services.ingest import metrics
from services.ingest.body import read_limited, require_media_type
from services.ingest.database import DatabaseUnavailable
from services.ingest.dedupe import InFlight
from services.ingest.domain import BodyRejected, Parsed, Rejection
from services.ingest.intake import Intake, Origin, Prepare, Submitted
from services.ingest.reasons import Reason
from services.ingest.schemas import ItemError
from shared.clock import Clock
from shared.errors import database_reason, describe
from shared.faults import OutageLog
from shared.http import problem_response
from shared.kafka import BrokerUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_BROKER_S = "5"
RETRY_AFTER_IN_FLIGHT_S = "1"

BODY_STATUS = {
    Reason.unsupported_media_type: 415,
    Reason.body_too_large: 413,
    Reason.too_many_events: 413,
    Reason.event_too_large: 413,
}


@dataclass(frozen=True)
class Deferred:
    """A body whose items its source decides against what it keeps in the ingest
    database (Segment calls and their users' accounts), in the transaction that claims
    their ids: the first ``count`` items ``prepare`` gives are the body's own, the rest
    are items of earlier bodies it releases (published with it, not in its answer)."""

    count: int
    batch: bool
    prepare: Prepare


Parser = Callable[[bytes, datetime], Awaitable[Parsed | Deferred]]
Redactor = Callable[[bytes], bytes]


def keep(body: bytes) -> bytes:
    return body


@dataclass(frozen=True)
class Refused:
    """An error answer: status, machine-readable error, message for people."""

    status: int
    error: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class RequestRefused(Exception):
    """Raised by a parser to refuse a request that carries no record to keep (a bad
    signature): answered with ``refused``, counted, not dead-lettered."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.message)
        self.refused = refused


@dataclass(frozen=True)
class Received:
    batch: bool
    """False for a single posted event."""
    outcome: Submitted


class HttpIntake:
    def __init__(self, intake: Intake, max_body_bytes: int, clock: Clock) -> None:
        self._intake = intake
        # Every request meets a broker outage: it is logged once, not once per request.
        self._broker_outage = OutageLog(log, "publishing events to the broker")
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    async def read(
        self, request: Request, media_types: tuple[str, ...], max_bytes: int | None = None
    ) -> bytes:
        """The body, if of one of ``media_types`` and within the limits; else raise
        ``BodyRejected``."""
        require_media_type(request, media_types)
        return await read_limited(
            request, min(max_bytes or self._max_body_bytes, self._max_body_bytes)
        )

    async def receive(
        self,
        request: Request,
        *,
        channel: str,
        media_types: tuple[str, ...],
        parse: Parser,
        max_bytes: int | None = None,
        redact: Redactor = keep,
        statuses: Mapping[Reason, int] = BODY_STATUS,
        sender_known_in_parse: bool = False,
        body: bytes | None = None,
    ) -> Received | Refused:
        """``redact`` removes secrets from a body dead-lettered whole; ``statuses`` gives
        the answer to each body-level reason (400 when not listed); ``body``, when
        given, was already read (by ``read``) to find its sender.

        ``sender_known_in_parse``: only ``parse`` can tell who sent the body (a Stripe
        signature), so a body refused before it (media type, size) is answered but not
        dead-lettered: an unknown sender must not be able to write to the dead-letter
        topic.
        """
        origin = Origin.http(request.url.path)
        try:
            if body is None:
                body = await self.read(request, media_types, max_bytes)
        except BodyRejected as exc:
            if sender_known_in_parse:
                return _refused_unread(exc.rejection, statuses)
            return await self._refuse_body(exc.rejection, redact, origin, channel, statuses)
        try:
            parsed = await parse(body, self._clock())
        except BodyRejected as exc:
            return await self._refuse_body(exc.rejection, redact, origin, channel, statuses)
        except RequestRefused as exc:
            metrics.REQUESTS_REJECTED.labels(exc.refused.error).inc()
            return exc.refused
        except (DatabaseUnavailable, InFlight) as exc:
            return unavailable(exc)
        try:
            outcome = await self._submit(parsed, origin, channel)
        except (BrokerUnavailable, DatabaseUnavailable, InFlight) as exc:
            if isinstance(exc, BrokerUnavailable):
                self._broker_outage.failed(describe(exc), float(RETRY_AFTER_BROKER_S))
            return unavailable(exc)
        self._broker_outage.recovered()
        count = parsed.count if isinstance(parsed, Deferred) else len(parsed.items)
        return Received(parsed.batch, outcome.within(count))

    async def _submit(self, parsed: Parsed | Deferred, origin: Origin, channel: str) -> Submitted:
        if isinstance(parsed, Deferred):
            return await self._intake.submit_prepared(parsed.prepare, channel)
        return await self._intake.submit([(item, origin) for item in parsed.items], channel)

    async def _refuse_body(
        self,
        rejection: Rejection,
        redact: Redactor,
        origin: Origin,
        channel: str,
        statuses: Mapping[Reason, int],
    ) -> Refused:
        rejection = dataclasses.replace(rejection, original=redact(rejection.original))
        try:
            await self._intake.submit([(rejection, origin)], channel)
        except (BrokerUnavailable, DatabaseUnavailable, InFlight) as exc:
            # The sender still learns its body is wrong; only the copy is missing.
            log.error("dead letter for a refused body not stored: %s", exc)
        status = statuses.get(rejection.reason, 400)
        return Refused(status, rejection.reason.value, rejection.message)


def _refused_unread(rejection: Rejection, statuses: Mapping[Reason, int]) -> Refused:
    metrics.REQUESTS_REJECTED.labels(rejection.reason.value).inc()
    return Refused(statuses.get(rejection.reason, 400), rejection.reason.value, rejection.message)


def unavailable(exc: Exception) -> Refused:
    """503; the answer names the kind of failure only: a driver's or client's message
    (which may quote values or addresses) is logged."""
    if isinstance(exc, InFlight):
        metrics.REQUESTS_REJECTED.labels("in_flight").inc()
        message = f"{exc}; nothing stored, retry shortly with the same event ids"
        return Refused(503, "in_flight", message, headers={"Retry-After": RETRY_AFTER_IN_FLIGHT_S})
    cause = exc.__cause__ or exc
    if isinstance(exc, BrokerUnavailable):
        error, reason = "broker_unavailable", f"broker unavailable ({type(cause).__name__})"
    else:
        error = "database_unavailable"
        reason = f"database {database_reason(cause, 'ingest request')}"
    metrics.REQUESTS_REJECTED.labels(error).inc()
    message = f"events not stored: {reason}; retry with the same event ids"
    return Refused(503, error, message, headers={"Retry-After": RETRY_AFTER_BROKER_S})


def refused_response(refused: Refused) -> JSONResponse:
    """A refusal as a Problem (the native and Stripe routes' error shape)."""
    return problem_response(refused.status, refused.error, refused.message, headers=refused.headers)


def item_error(index: int, rejection: Rejection) -> ItemError:
    details = [dict(d) for d in rejection.details] or None
    return ItemError(
        index=index, reason=rejection.reason, message=rejection.message, details=details
    )
