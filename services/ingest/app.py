"""The ingest service: validates posted events and publishes them to ``vitals.events``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse

from services.ingest import metrics
from services.ingest.normalise import InvalidPayload, normalise, parse_payload
from services.ingest.publisher import EventPublisher
from services.ingest.schemas import EventBatchIn, EventIn, IngestAccepted
from services.ingest.settings import IngestSettings
from shared.health import Readiness
from shared.http import (
    BodyTooLarge,
    Problem,
    create_service_app,
    is_json,
    problem_response,
    read_body,
)
from shared.kafka import BrokerUnavailable

RETRY_AFTER_S = "5"


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    readiness = Readiness("kafka")
    publisher = EventPublisher(settings, readiness)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        yield
        await publisher.stop()

    app = create_service_app(
        title="Vitals ingest",
        description="Accepts product-usage, billing and account events.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.publisher = publisher
    _add_routes(app)
    _document_request_body(app)
    return app


def _publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


def _settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


Publisher = Annotated[EventPublisher, Depends(_publisher)]
Settings = Annotated[IngestSettings, Depends(_settings)]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "Malformed JSON",
        413: "Body too large",
        415: "Not application/json",
        422: "Invalid fields, each named",
        503: "Broker unavailable: nothing stored, retry with the same event ids",
    }.items()
}


def _add_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/events",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=IngestAccepted,
        responses=ERRORS,
        tags=["events"],
        summary="Post one event or a batch",
        description=(
            'Body: one event, or `{"events": [...]}`. Either every event is stored '
            "or none is. 202 means the broker acknowledged all of them."
        ),
    )
    async def post_events(
        request: Request, publisher: Publisher, settings: Settings
    ) -> IngestAccepted | JSONResponse:
        if not is_json(request):
            return _reject(415, "unsupported_media_type", "send Content-Type: application/json")
        try:
            body = await read_body(request, settings.ingest_max_body_bytes)
            incoming = parse_payload(body, settings.ingest_max_batch_events)
        except BodyTooLarge as exc:
            return _reject(413, "body_too_large", str(exc))
        except InvalidPayload as exc:
            code = 422 if exc.errors else 400
            return _reject(code, "invalid_payload", exc.message, exc.errors)
        received_at = datetime.now(UTC)
        events = [normalise(event, received_at) for event in incoming]
        try:
            await publisher.publish(events)
        except BrokerUnavailable as exc:
            headers = {"Retry-After": RETRY_AFTER_S}
            return _reject(503, "broker_unavailable", f"events not stored: {exc}", None, headers)
        metrics.EVENTS_ACCEPTED.labels("http").inc(len(events))
        return IngestAccepted(accepted=len(events), event_ids=[e.event_id for e in events])


def _reject(
    code: int,
    error: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    metrics.REQUESTS_REJECTED.labels(error).inc()
    return problem_response(code, error, message, details, headers)


def _document_request_body(app: FastAPI) -> None:
    """The body is parsed by hand (size limit first); describe it in OpenAPI anyway."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        body_schema: dict[str, Any] = {"oneOf": []}
        for model in (EventIn, EventBatchIn):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
            body_schema["oneOf"].append({"$ref": f"#/components/schemas/{model.__name__}"})
        operation = schema["paths"]["/v1/events"]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
