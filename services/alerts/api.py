"""The alerts HTTP API: alerts (list, ack, snooze), deliveries, and the admin API
(silences, channels, routes, rules) behind the admin token."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import configuration, repository
from services.alerts.configuration import SetupCache
from services.alerts.delivery.channels import Channel, channel_document, masked, parse_channel
from services.alerts.delivery.payloads import sample_event
from services.alerts.delivery.routing import parse_routes
from services.alerts.delivery.senders import Senders, SendFailed
from services.alerts.delivery.ssrf import TargetRefused
from services.alerts.documents import ConfigError, JsonObject
from services.alerts.models import Alert, ChannelRow, Delivery, Silence
from services.alerts.rules.engine import AlertState
from services.alerts.rules.ruleset import parse_rules
from services.alerts.schemas import (
    AckRequest,
    AlertList,
    AlertRead,
    ChannelList,
    ChannelRead,
    ChannelTestResult,
    DeliveryList,
    DeliveryRead,
    RoutesRead,
    RulesRead,
    SilenceCreate,
    SilenceList,
    SilenceRead,
    SnoozeRequest,
)
from services.alerts.settings import AlertsSettings
from shared.auth import KeyRing, Scope, authenticate, client_address, gate, install_auth
from shared.clock import Clock
from shared.cursor import decode_time_cursor, encode_cursor
from shared.errors import invalid_request, times_out_of_range
from shared.http import DbSession, GatedRoute, Problem, problem_response
from shared.scores import Tier

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "No or a wrong API key (admin API: admin token)"},
    403: {"model": Problem, "description": "A key without the read scope, or admin API off"},
    404: {"model": Problem, "description": "No such item"},
    409: {"model": Problem, "description": "Not possible in the item's state"},
    422: {"model": Problem, "description": "Invalid input; details name the field"},
    429: {"model": Problem, "description": "The API key is over its rate; see Retry-After"},
}
SNOOZE_PAST_9999 = {
    "loc": ["body", "for"],
    "message": "the snooze would end past year 9999",
    "type": "datetime_range",
}


class ApiError(Exception):
    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.error, self.message = status_code, error, message


@dataclass(frozen=True)
class Runtime:
    settings: AlertsSettings
    setup_cache: SetupCache
    senders: Senders
    clock: Clock


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _admin_token(request: Request) -> None:
    token = _runtime(request).settings.alerts_admin_token
    if token is None:
        raise ApiError(403, "admin_api_off", "the admin API is off: set VITALS_ALERTS_ADMIN_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        keyring: KeyRing = request.app.state.keyring
        keyring.limit_unauthenticated(client_address(request))
        raise ApiError(401, "unauthorized", "send the admin token as Authorization: Bearer ...")


require_admin = gate(_admin_token)
"""The admin token, checked before anything else of a request (a gate)."""


def install(app: FastAPI, keyring: KeyRing) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if exc.status_code == 401 else None
        return problem_response(exc.status_code, exc.error, exc.message, headers=headers)

    @app.exception_handler(ConfigError)
    async def _config_error(_: Request, exc: ConfigError) -> JSONResponse:
        lines = str(exc).splitlines()
        details = [{"problem": line.strip()} for line in lines[1:]] or None
        return problem_response(422, "invalid_configuration", lines[0], details)

    install_auth(app, keyring)
    app.include_router(alerts_router)
    app.include_router(admin_router)


# Reading alerts and deliveries takes an API key with the read scope, a CSM's ack or
# snooze one with act too (shared/auth.py); channels, routes, silences and rules the
# admin token.
ACT = [Depends(authenticate(Scope.act))]
alerts_router = APIRouter(
    tags=["alerts"],
    dependencies=[Depends(authenticate(Scope.read))],
    responses=ERRORS,
    route_class=GatedRoute,
)
admin_router = APIRouter(
    tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS, route_class=GatedRoute
)


# --- alerts -------------------------------------------------------------------------------


@alerts_router.get(
    "/v1/alerts",
    response_model=AlertList,
    summary="List alerts, newest first",
    responses={400: {"model": Problem, "description": "A bad cursor"}},
)
async def list_alerts(
    session: DbSession,
    runtime: RuntimeDep,
    state: Annotated[AlertState | None, Query(description="open or resolved")] = None,
    rule: Annotated[str | None, Query(max_length=100)] = None,
    tier: Tier | None = None,
    owner: Annotated[str | None, Query(max_length=320, description="e-mail or handle")] = None,
    account_id: Annotated[str | None, Query(max_length=200)] = None,
    snoozed: Annotated[
        bool | None,
        Query(description="true: only alerts snoozed now; false: none snoozed now"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="A page's `next_cursor`: the next page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList | JSONResponse:
    try:
        after = decode_time_cursor(cursor) if cursor else None
    except ValueError as exc:
        return problem_response(400, "bad_cursor", str(exc))
    where = repository.AlertFilter(
        state.value if state else None,
        rule,
        tier.value if tier else None,
        owner,
        account_id,
        snoozed_at=None if snoozed is None else runtime.clock(),
        snoozed=snoozed,
    )
    rows = await repository.list_alerts(session, where, limit + 1, after)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].opened_at, page[-1].id) if len(rows) > limit else None
    return AlertList(alerts=[AlertRead.of(row) for row in page], next_cursor=next_cursor)


@alerts_router.get("/v1/alerts/{alert_id}", response_model=AlertRead, summary="One alert")
async def get_alert(alert_id: str, session: DbSession) -> AlertRead:
    return AlertRead.of(await _alert(session, alert_id))


@alerts_router.post(
    "/v1/alerts/{alert_id}/ack",
    response_model=AlertRead,
    dependencies=ACT,
    summary="Acknowledge: no reminders",
)
async def ack_alert(
    alert_id: str, body: AckRequest, session: DbSession, runtime: RuntimeDep
) -> AlertRead:
    async with session.begin():
        alert = await _open_alert(session, alert_id)
        alert.acked_at, alert.acked_by = runtime.clock(), body.by
    return AlertRead.of(alert)


@alerts_router.post(
    "/v1/alerts/{alert_id}/snooze",
    response_model=AlertRead,
    dependencies=ACT,
    summary="No notices until a time",
)
async def snooze_alert(
    alert_id: str, body: SnoozeRequest, session: DbSession, runtime: RuntimeDep
) -> AlertRead | JSONResponse:
    now = runtime.clock()
    try:
        until = body.until if body.until is not None else now + body.for_  # type: ignore[operator]
    except OverflowError:
        return invalid_request([SNOOZE_PAST_9999])
    if problems := times_out_of_range("body", until=until):
        return invalid_request(problems)
    if until <= now:
        raise ApiError(422, "invalid_snooze", "the snooze must end in the future")
    async with session.begin():
        alert = await _open_alert(session, alert_id)
        alert.snoozed_until = until
    return AlertRead.of(alert)


async def _alert(session: AsyncSession, alert_id: str) -> Alert:
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return alert


async def _open_alert(session: AsyncSession, alert_id: str) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    if alert.state != "open":
        raise ApiError(409, "alert_resolved", f"alert {alert_id!r} is already resolved")
    return alert


@alerts_router.get(
    "/v1/deliveries", response_model=DeliveryList, summary="Deliveries, newest first"
)
async def list_deliveries(
    session: DbSession,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|delivered|dead)$")
    ] = None,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    alert_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    rows = await repository.list_deliveries(session, status_, channel, alert_id, limit)
    return DeliveryList(deliveries=[DeliveryRead.model_validate(row) for row in rows])


@admin_router.post(
    "/v1/deliveries/{delivery_id}/retry",
    response_model=DeliveryRead,
    summary="Queue a dead delivery again, with a fresh round of attempts",
)
async def retry_delivery(delivery_id: str, session: DbSession, runtime: RuntimeDep) -> DeliveryRead:
    async with session.begin():
        row = await session.get(Delivery, delivery_id, with_for_update=True)
        if row is None:
            raise ApiError(404, "not_found", f"no delivery {delivery_id!r}")
        if row.status != "dead":
            raise ApiError(409, "delivery_not_dead", f"delivery {delivery_id!r} is {row.status}")
        row.status, row.attempts, row.dead_at = "pending", 0, None
        row.next_attempt_at = runtime.clock()
    return DeliveryRead.model_validate(row)


# --- silences -----------------------------------------------------------------------------


@admin_router.get("/v1/silences", response_model=SilenceList, summary="Silences")
async def list_silences(
    session: DbSession, runtime: RuntimeDep, expired: bool = False
) -> SilenceList:
    rows = await repository.list_silences(session, expired, runtime.clock())
    return SilenceList(silences=[SilenceRead.model_validate(row) for row in rows])


@admin_router.post(
    "/v1/silences",
    response_model=SilenceRead,
    status_code=status.HTTP_201_CREATED,
    summary="Mute notices of matching alerts until a time",
)
async def create_silence(
    body: SilenceCreate, session: DbSession, runtime: RuntimeDep
) -> SilenceRead | JSONResponse:
    now = runtime.clock()
    if problems := times_out_of_range("body", starts_at=body.starts_at, ends_at=body.ends_at):
        return invalid_request(problems)
    if body.ends_at <= now:
        raise ApiError(422, "invalid_silence", "ends_at must be in the future")
    row = Silence(
        id=str(uuid.uuid4()),
        account_id=body.account_id,
        rule=body.rule,
        tier=body.tier.value if body.tier else None,
        owner=body.owner,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        comment=body.comment,
        created_by=body.created_by,
        created_at=now,
    )
    async with session.begin():
        session.add(row)
    return SilenceRead.model_validate(row)


@admin_router.delete("/v1/silences/{silence_id}", status_code=204, summary="Expire a silence now")
async def expire_silence(silence_id: str, session: DbSession, runtime: RuntimeDep) -> Response:
    async with session.begin():
        row = await session.get(Silence, silence_id)
        if row is None:
            raise ApiError(404, "not_found", f"no silence {silence_id!r}")
        row.ends_at = min(row.ends_at, runtime.clock())
    return Response(status_code=204)


# --- channels -----------------------------------------------------------------------------


def _channel_read(row: ChannelRow) -> ChannelRead:
    channel = parse_channel(row.document, f"channel {row.id}")
    return ChannelRead(
        id=row.id,
        kind=channel.kind,
        source=row.source,
        enabled=channel.enabled and row.disabled_reason is None,
        disabled_reason=row.disabled_reason,
        config=masked(channel),
    )


@admin_router.get("/v1/channels", response_model=ChannelList, summary="Channels, secrets masked")
async def list_channels(session: DbSession) -> ChannelList:
    rows = await repository.channel_rows(session)
    return ChannelList(channels=[_channel_read(row) for row in rows])


@admin_router.put(
    "/v1/channels/{channel_id}", response_model=ChannelRead, summary="Create or replace a channel"
)
async def put_channel(
    channel_id: str, body: JsonObject, session: DbSession, runtime: RuntimeDep
) -> ChannelRead:
    channel = parse_channel({**body, "id": channel_id}, "channel")
    await _check_reachable(channel, runtime)
    async with session.begin():
        await repository.raise_config_revision(session)
        row = await repository.channel_row(session, channel_id, lock=True)
        if row is not None and row.source != "api":
            raise ApiError(
                409,
                "channel_from_file",
                f"channel {channel_id!r} is set by {row.source}; change it there",
            )
        if row is None:
            row = ChannelRow(id=channel_id, source="api")
            session.add(row)
        row.document, row.disabled_reason = channel_document(channel), None
        row.updated_at = runtime.clock()
    return _channel_read(row)


async def _check_reachable(channel: Channel, runtime: RuntimeDep) -> None:
    try:
        policy = runtime.setup_cache.files.policy
        channel.check_target(policy)
        host = channel.host_and_port()
        if host is not None:
            await policy.resolve(*host)
    except TargetRefused as exc:
        raise ApiError(
            422, "target_refused", f"channel {channel.id}: target refused: {exc}"
        ) from None
    except OSError as exc:
        raise ApiError(422, "target_unresolvable", f"channel {channel.id}: {exc}") from None


@admin_router.delete("/v1/channels/{channel_id}", status_code=204, summary="Remove a channel")
async def delete_channel(channel_id: str, session: DbSession) -> Response:
    async with session.begin():
        await repository.raise_config_revision(session)
        row = await repository.channel_row(session, channel_id)
        if row is None:
            raise ApiError(404, "not_found", f"no channel {channel_id!r}")
        if row.source != "api":
            raise ApiError(
                409,
                "channel_from_file",
                f"channel {channel_id!r} is set by {row.source}; change it there",
            )
        await session.delete(row)
    return Response(status_code=204)


@admin_router.post(
    "/v1/channels/{channel_id}/enable", response_model=ChannelRead, summary="Enable again after 410"
)
async def enable_channel(channel_id: str, session: DbSession, runtime: RuntimeDep) -> ChannelRead:
    async with session.begin():
        await repository.raise_config_revision(session)
        row = await repository.channel_row(session, channel_id)
        if row is None:
            raise ApiError(404, "not_found", f"no channel {channel_id!r}")
        row.disabled_reason, row.updated_at = None, runtime.clock()
    return _channel_read(row)


@admin_router.post(
    "/v1/channels/{channel_id}/test",
    response_model=ChannelTestResult,
    summary="Send a test notice now and tell how it went",
)
async def test_channel(
    channel_id: str, session: DbSession, runtime: RuntimeDep
) -> ChannelTestResult:
    row = await repository.channel_row(session, channel_id)
    if row is None:
        raise ApiError(404, "not_found", f"no channel {channel_id!r}")
    channel = parse_channel(row.document, f"channel {row.id}")
    event = sample_event(runtime.clock())
    recipients = channel.test_recipients()
    try:
        await runtime.senders.send(channel, str(uuid.uuid4()), event, recipients)
    except SendFailed as exc:
        return ChannelTestResult(delivered=False, error=str(exc))
    return ChannelTestResult(delivered=True)


# --- routes and rules -----------------------------------------------------------------------


@admin_router.get("/v1/routes", response_model=RoutesRead, summary="The routing tree in force")
async def get_routes(session: DbSession, runtime: RuntimeDep) -> RoutesRead:
    setup = await runtime.setup_cache.current(session)
    document = setup.route.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return RoutesRead(source=setup.route_source, route=document)


@admin_router.put("/v1/routes", response_model=RoutesRead, summary="Replace the routing tree")
async def put_routes(body: JsonObject, session: DbSession, runtime: RuntimeDep) -> RoutesRead:
    async with session.begin():
        await repository.raise_config_revision(session)
        channels = {row.id for row in await repository.channel_rows(session)}
        tree = parse_routes(body, channels, "route")
        document = tree.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        await repository.save_config_document(
            session, configuration.ROUTES_KEY, document, runtime.clock()
        )
    return RoutesRead(source="api", route=document)


@admin_router.delete("/v1/routes", status_code=204, summary="Back to the file's routing tree")
async def delete_routes(session: DbSession) -> Response:
    async with session.begin():
        await repository.raise_config_revision(session)
        await repository.delete_config_document(session, configuration.ROUTES_KEY)
    return Response(status_code=204)


@admin_router.get("/v1/rules", response_model=RulesRead, summary="The alert rules in force")
async def get_rules(session: DbSession, runtime: RuntimeDep) -> RulesRead:
    setup = await runtime.setup_cache.current(session)
    rules = [rule.model_dump(mode="json") for rule in setup.rules]
    return RulesRead(source=setup.rules_source, rules=rules)


@admin_router.put("/v1/rules", response_model=RulesRead, summary="Replace the alert rules")
async def put_rules(body: JsonObject, session: DbSession, runtime: RuntimeDep) -> RulesRead:
    rules = parse_rules(body, "rules")
    document = rules.model_dump(mode="json")
    async with session.begin():
        await repository.raise_config_revision(session)
        await repository.save_config_document(
            session, configuration.RULES_KEY, document, runtime.clock()
        )
    return RulesRead(source="api", rules=document["rules"])


@admin_router.delete("/v1/rules", status_code=204, summary="Back to the rules file")
async def delete_rules(session: DbSession) -> Response:
    async with session.begin():
        await repository.raise_config_revision(session)
        await repository.delete_config_document(session, configuration.RULES_KEY)
    return Response(status_code=204)
