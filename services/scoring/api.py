"""The scoring HTTP API: accounts, history, portfolio, scorecards and overrides."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import repository
from services.scoring.domain import AccountState, Signals, account_facts
from services.scoring.models import ATTENTION_DROP, Account, AccountOverride, ScoreHistory
from services.scoring.schemas import (
    AccountCount,
    AccountPage,
    AccountRead,
    AccountSummary,
    AttentionEntry,
    AttentionList,
    HistoryEntry,
    HistoryPage,
    LastPayment,
    OverrideCreate,
    OverrideRead,
    OverridesLifted,
    PortfolioDayRead,
    PortfolioRead,
    ScorecardRead,
    TierFigures,
)
from services.scoring.scorecard import ScorecardSet
from shared.auth import ApiKey, Scope, authenticate
from shared.clock import Clock
from shared.cursor import decode_int_cursor, encode_cursor
from shared.errors import invalid_request, times_out_of_range
from shared.events import INT64_MAX, INT64_MIN
from shared.http import DbSession, GatedRoute, Problem, app_state, problem_response
from shared.recent import Recent
from shared.scores import Band, Driver, Risk, Stage, Tier

# ``:id`` (shared/http.py): an account id may hold ``/`` (sent as is or as %2F). The
# routes of an account's history and overrides are declared before the account's
# own, so an id ending in ``/history`` or ``/overrides`` reads as that sub-resource.
ACCOUNT = "/accounts/{account_id:id}"
AccountId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=200,
        description="As sent in events; a `/` in it may be sent as is or as %2F.",
        examples=["acme", "team/acme"],
    ),
]
# History cursors are sequence numbers, stored as 32-bit integers.
MAX_SEQUENCE = 2**31 - 1
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No events seen for this account"}
}
MAX_OVERRIDE_DAYS = 366
MOVEMENT = timedelta(days=30)  # the portfolio's movement is over this
MOST_COUNTED = 10_000  # the accounts list counts this many at most ("more than")
AUTH_FAILURES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No API key, or not a valid one (`Authorization: Bearer vk_...` or "
        "`X-API-Key`)",
    },
    403: {"model": Problem, "description": "The key lacks the scope this endpoint needs"},
    429: {"model": Problem, "description": "The key is over its rate; see Retry-After"},
}
READ = [Depends(authenticate(Scope.read))]
OwnerScope = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=320,
        description="Only this CSM's accounts (e-mail or handle), figured afresh.",
    ),
]
SegmentScope = Annotated[
    str | None,
    Query(
        min_length=1, max_length=200, description="Only this segment's accounts, figured afresh."
    ),
]
# Overrides are a CSM's action: the act scope (admin keys keep the right they had).
ActKey = Annotated[ApiKey | None, Depends(authenticate(Scope.act))]


class SummedFigures(TypedDict):
    """The fields of ``PortfolioFigures``, as ``_summed`` adds them up."""

    accounts: int
    mrr_minor: int
    tiers: dict[str, TierFigures]
    bands: dict[str, int]
    risks: dict[str, int]


@dataclass(frozen=True)
class ScoringContext:
    """What the routes read besides the database; kept on ``app.state.scoring``."""

    scorecards: ScorecardSet
    clock: Clock
    portfolio: Recent[PortfolioRead]


Context = Annotated[ScoringContext, app_state("scoring")]
router = APIRouter(prefix="/v1", responses=AUTH_FAILURES, route_class=GatedRoute)


@router.get(
    "/accounts",
    dependencies=READ,
    response_model=AccountPage,
    responses={400: {"model": Problem, "description": "A bad cursor"}},
    tags=["accounts"],
    summary="Accounts, filtered and sorted, a page at a time",
)
async def list_accounts(
    session: DbSession,
    tier: Annotated[list[Tier] | None, Query()] = None,
    band: Annotated[list[Band] | None, Query()] = None,
    risk: Annotated[list[Risk] | None, Query()] = None,
    stage: Annotated[list[Stage] | None, Query()] = None,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    stale: Annotated[
        bool | None,
        Query(description="true: only accounts whose data stopped coming; false: the rest"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="A prefix of the account's id (as written) or name (any case).",
        ),
    ] = None,
    churned: Annotated[
        bool | None,
        Query(description="true: only churned accounts; false: the rest"),
    ] = None,
    renews_from: Annotated[
        date | None, Query(description="Renewing on or after this day (inclusive).")
    ] = None,
    renews_until: Annotated[
        date | None, Query(description="Renewing on or before this day (inclusive).")
    ] = None,
    sort: Annotated[Literal["score", "change", "mrr", "renewal"], Query()] = "score",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    count: Annotated[
        bool,
        Query(description=f"true: also count the accounts found, up to {MOST_COUNTED:,}."),
    ] = False,
) -> AccountPage | JSONResponse:
    try:
        after = _account_cursor(cursor) if cursor else None
    except ValueError as exc:
        return problem_response(400, "bad_cursor", str(exc))
    filters = repository.AccountFilters(
        tier=_values(tier),
        band=_values(band),
        risk=_values(risk),
        stage=_values(stage),
        owner=owner,
        segment=segment,
        stale=stale,
        search=q,
        churned=churned,
        renews_from=repository.day_number(renews_from),
        renews_until=repository.day_number(renews_until),
    )
    rows = await repository.list_accounts(session, filters, sort, order == "desc", after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor(repository.sort_value(last, sort), last.account_id)
    counted = None
    if count:
        found = await repository.count_accounts(session, filters, MOST_COUNTED + 1)
        counted = AccountCount(accounts=min(found, MOST_COUNTED), more=found > MOST_COUNTED)
    return AccountPage(accounts=[_summary(r) for r in page], next_cursor=next_cursor, count=counted)


@router.get(
    "/attention",
    dependencies=READ,
    response_model=AttentionList,
    tags=["portfolio"],
    summary="The accounts that need attention first, with why, in one read",
)
async def get_attention(
    session: DbSession,
    scoring: Context,
    owner: OwnerScope = None,
    segment: SegmentScope = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AttentionList:
    now = scoring.clock()
    scope = repository.PortfolioScope(owner, segment)
    rows = await repository.attention(session, scope, now.date(), limit)
    return AttentionList(accounts=[_attention(row, now.date()) for row in rows], computed_at=now)


@router.get(
    f"{ACCOUNT}/overrides",
    dependencies=READ,
    response_model=list[OverrideRead],
    responses=NOT_FOUND,
    tags=["overrides"],
    summary="The override audit of one account: every override, active, lifted or lapsed",
)
async def get_overrides(
    account_id: AccountId, session: DbSession, scoring: Context
) -> list[OverrideRead] | JSONResponse:
    now = scoring.clock()
    if await repository.get_account(session, account_id) is None:
        return _not_found(account_id)
    rows = await repository.overrides_of(session, account_id, now, include_inactive=True)
    return [_override(row, now) for row in rows]


@router.get(
    f"{ACCOUNT}/history",
    dependencies=READ,
    response_model=HistoryPage,
    responses={**NOT_FOUND, 400: {"model": Problem, "description": "A bad cursor"}},
    tags=["accounts"],
    summary="Material score changes of one account over a time range",
)
async def get_history(
    account_id: AccountId,
    session: DbSession,
    since: Annotated[datetime | None, Query(description="From, inclusive.")] = None,
    until: Annotated[datetime | None, Query(description="Until, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,12}$")] = None,
) -> HistoryPage | JSONResponse:
    if problems := times_out_of_range("query", since=since, until=until):
        return invalid_request(problems)
    after = int(cursor) if cursor else None
    if after is not None and after > MAX_SEQUENCE:
        return problem_response(400, "bad_cursor", "not a cursor of this history")
    if await repository.get_account(session, account_id) is None:
        return _not_found(account_id)
    rows = await repository.history(session, account_id, since, until, after, limit + 1)
    page = rows[:limit]
    next_cursor = str(page[-1].sequence) if len(rows) > limit else None
    return HistoryPage(entries=[_history(r) for r in page], next_cursor=next_cursor)


@router.get(
    ACCOUNT,
    dependencies=READ,
    response_model=AccountRead,
    responses=NOT_FOUND,
    tags=["accounts"],
    summary="Current score of one account, with components, drivers, tier, stage",
)
async def get_account(
    account_id: AccountId, session: DbSession, scoring: Context
) -> AccountRead | JSONResponse:
    row = await repository.get_account(session, account_id)
    if row is None:
        return _not_found(account_id)
    overrides = await repository.overrides_of(session, account_id, scoring.clock())
    return _account(row, overrides, scoring.scorecards, scoring.clock())


@router.get(
    "/portfolio",
    dependencies=READ,
    response_model=PortfolioRead,
    tags=["portfolio"],
    summary="Tier and band distribution, revenue share per tier",
)
async def get_portfolio(
    session: DbSession,
    scoring: Context,
    owner: OwnerScope = None,
    segment: SegmentScope = None,
) -> PortfolioRead:
    scope = repository.PortfolioScope(owner, segment)
    if not scope.everyone:  # a part: read through the owner or segment index
        return await _portfolio(session, scoring.clock(), scope)
    return await scoring.portfolio.get(lambda: _portfolio(session, scoring.clock(), scope))


@router.get(
    "/scorecards",
    dependencies=READ,
    response_model=list[ScorecardRead],
    tags=["scorecards"],
    summary="The loaded scorecards and how accounts are assigned to them",
)
async def get_scorecards(scoring: Context) -> list[ScorecardRead]:
    scorecards = scoring.scorecards
    return [
        ScorecardRead(
            ref=card.ref,
            id=card.id,
            version=card.version,
            default=card is scorecards.default,
            definition=card.model_dump(mode="json"),
        )
        for card in scorecards.all
    ]


@router.post(
    f"{ACCOUNT}/overrides",
    response_model=OverrideRead,
    status_code=201,
    responses={**NOT_FOUND, 422: {"model": Problem, "description": "A bad override"}},
    tags=["overrides"],
    summary="Override an account's band or tier until an expiry, with a reason",
)
async def post_override(
    account_id: AccountId, body: OverrideCreate, session: DbSession, key: ActKey, scoring: Context
) -> OverrideRead | JSONResponse:
    now = scoring.clock()
    if body.expires_at <= now:
        return problem_response(422, "invalid_override", "expires_at must be in the future")
    if body.expires_at > now + timedelta(days=MAX_OVERRIDE_DAYS):
        return problem_response(
            422, "invalid_override", f"expires_at must be within {MAX_OVERRIDE_DAYS} days"
        )
    async with session.begin():
        if await repository.get_account(session, account_id) is None:
            return _not_found(account_id)
        override = AccountOverride(
            id=str(uuid.uuid4()),
            account_id=account_id,
            field=body.field,
            value=body.value,
            reason=body.reason,
            created_by=body.created_by,
            created_with_key=key.name if key else None,
            created_at=now,
            expires_at=body.expires_at,
            pending=True,
        )
        await repository.add_override(session, override)
    return _override(override, now)


@router.delete(
    f"{ACCOUNT}/overrides",
    response_model=OverridesLifted,
    responses={404: {"model": Problem, "description": "No active override to lift"}},
    tags=["overrides"],
    summary="Lift an account's active overrides (of one field, or all)",
)
async def delete_overrides(
    account_id: AccountId,
    session: DbSession,
    key: ActKey,
    scoring: Context,
    by: Annotated[str, Query(min_length=1, max_length=200, description="Who lifts it.")],
    field: Annotated[Literal["band", "tier"] | None, Query()] = None,
    reason: Annotated[str, Query(max_length=2000)] = "lifted",
) -> OverridesLifted | JSONResponse:
    async with session.begin():
        lifted = await repository.lift_overrides(
            session, account_id, field, by, reason, scoring.clock(), key.name if key else None
        )
    if not lifted:
        return problem_response(404, "not_found", f"no active override on {account_id!r}")
    return OverridesLifted(lifted=lifted)


async def _portfolio(
    session: AsyncSession, now: datetime, scope: repository.PortfolioScope
) -> PortfolioRead:
    figures = await repository.portfolio_figures(session, scope)
    kept = await repository.portfolio_day(session, (now - MOVEMENT).date(), now.date(), scope)
    earlier = PortfolioDayRead(day=kept[0], **_summed(kept[1])) if kept is not None else None
    return PortfolioRead(computed_at=now, earlier=earlier, **_summed(figures))


def _summed(figures: list[repository.PortfolioFigures]) -> SummedFigures:
    """Accounts and revenue by tier (with revenue share), accounts by band and by risk."""
    total_mrr = sum(mrr for *_, mrr in figures)
    tiers: dict[str, list[int]] = {}
    bands: dict[str, int] = {}
    risks: dict[str, int] = {}
    for tier, band, risk, count, mrr in figures:
        sums = tiers.setdefault(tier or "unrated", [0, 0])
        sums[0] += count
        sums[1] += mrr
        bands[band or "unscored"] = bands.get(band or "unscored", 0) + count
        risks[risk or "unscored"] = risks.get(risk or "unscored", 0) + count
    return {
        "accounts": sum(count for *_, count, _ in figures),
        "mrr_minor": total_mrr,
        "tiers": {
            name: TierFigures(
                accounts=count, mrr_minor=mrr, revenue_share=mrr / total_mrr if total_mrr else 0
            )
            for name, (count, mrr) in sorted(tiers.items())
        },
        "bands": dict(sorted(bands.items())),
        "risks": dict(sorted(risks.items())),
    }


def _account_cursor(cursor: str) -> tuple[int, str]:
    """A cursor of the account list; ValueError unless it could be one this API gave
    (sort values are 64-bit, ids hold no NUL)."""
    value, account_id = decode_int_cursor(cursor)
    if not INT64_MIN <= value <= INT64_MAX or "\0" in account_id:
        raise ValueError("not a cursor from this API")
    return value, account_id


def _values(items: list[Tier] | list[Band] | list[Risk] | list[Stage] | None) -> list[str] | None:
    return [item.value for item in items] if items else None


def _not_found(account_id: str) -> JSONResponse:
    return problem_response(404, "not_found", f"no events seen for account {account_id!r}")


def _attention(row: repository.AttentionRow, today: date) -> AttentionEntry:
    c = row.columns
    band, tier, risk, stage = (_text(c[name]) for name in ("band", "tier", "risk", "stage"))
    renewal = repository.day_of(_int(c["renewal_day"]))
    change_30d = _int(c["change_30d"])
    return AttentionEntry(
        account_id=str(c["account_id"]),
        name=row.name,
        health_score=_int(c["health_score"]),
        band=Band(band) if band else None,
        tier=Tier(tier) if tier else None,
        risk=Risk(risk) if risk else None,
        stage=Stage(stage) if stage else None,
        owner=_text(c["owner"]),
        segment=_text(c["segment"]),
        mrr_minor=_int(c["mrr_minor"]),
        score_change=_int(c["score_change"]),
        value_score=_int(c["value_score"]),
        stale=c["stale"] if isinstance(c["stale"], bool) else None,
        scored_at=c["scored_at"] if isinstance(c["scored_at"], datetime) else None,
        renewal_date=renewal,
        change_30d=change_30d,
        why=why(row.reasons, risk, band, renewal, change_30d, today),
    )


def why(
    reasons: list[str],
    risk: str | None,
    band: str | None,
    renewal: date | None,
    change_30d: int | None,
    today: date,
) -> list[str]:
    """Why an account is on the attention list, most pressing first, in words."""
    said = [reasons[0]] if risk in ("high", "medium") and reasons else []
    window = timedelta(days=repository.ATTENTION_RENEWAL_DAYS)
    if renewal is not None and band != "green" and today <= renewal <= today + window:
        days = (renewal - today).days
        when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
        said.append(f"renews {when}, health {band or 'not scored'}")
    if change_30d is not None and change_30d <= ATTENTION_DROP:
        said.append(f"down {-change_30d} points in 30 days")
    if not said and risk:
        said.append(f"{risk} risk")
    return said


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _summary(row: Account) -> AccountSummary:
    name = (row.state.get("traits") or {}).get("name")
    return AccountSummary(
        account_id=row.account_id,
        name=name[0] if name else None,
        health_score=row.health_score,
        band=Band(row.band) if row.band else None,
        tier=Tier(row.tier) if row.tier else None,
        risk=Risk(row.risk) if row.risk else None,
        stage=Stage(row.stage) if row.stage else None,
        owner=row.owner,
        segment=row.segment,
        mrr_minor=row.mrr_minor,
        score_change=row.score_change,
        value_score=row.value_score,
        stale=row.stale,
        scored_at=row.scored_at,
        renewal_date=repository.day_of(row.renewal_day),
        change_30d=row.change_30d,
    )


def _account(
    row: Account,
    overrides: Sequence[AccountOverride],
    scorecards: ScorecardSet,
    now: datetime,
) -> AccountRead:
    state = AccountState.model_validate(row.state)
    last = state.current or state.last
    facts = account_facts(state)
    active = list(overrides)
    chosen = {o.field: o.value for o in sorted(active, key=lambda o: o.expires_at)}
    computed_tier = last.tier if last else None
    card = scorecards.for_account(facts.segment, facts.plan)
    window = card.user_window_days or 30
    signals = Signals(state, now, card)
    payment = state.payment
    return AccountRead(
        account_id=row.account_id,
        health_score=row.health_score,
        band=Band(chosen["band"]) if "band" in chosen else (last.band if last else None),
        computed_band=last.band if last else None,
        components=last.components if last else {},
        drivers=state.drivers,
        trend_7d=state.trend_7d,
        trend_30d=state.trend_30d,
        risk=last.risk if last else None,
        risk_reasons=last.risk_reasons if last else [],
        value_score=last.value_score if last else None,
        tier=Tier(chosen["tier"]) if "tier" in chosen else computed_tier,
        computed_tier=computed_tier,
        stage=last.stage if last else None,
        stale=row.stale,
        scored_at=row.scored_at,
        scorecard=last.scorecard if last else None,
        overrides=[_override(o, now) for o in active],
        sequence=row.sequence,
        events_applied=state.events_applied,
        name=facts.name,
        owner_csm_email=facts.owner_csm_email,
        owner_csm_slack=facts.owner_csm_slack,
        segment=facts.segment,
        plan=facts.plan,
        seats=facts.seats,
        active_users_30d=signals.active_users(window),
        active_users_estimated=state.users.estimated,
        mrr_minor=facts.mrr_minor,
        currency=facts.currency,
        subscription_status=str(state.status) if state.status else None,
        renewal_date=facts.renewal_date,
        last_payment=LastPayment(outcome=str(payment.outcome), on=payment.on, due_on=payment.due_on)
        if payment
        else None,
        days_past_due=signals.days_past_due() if state.billing.seen else None,
        last_usage_at=state.last_usage_at,
        last_event_at=state.last_event_at,
        updated_at=row.updated_at,
    )


def _history(row: ScoreHistory) -> HistoryEntry:
    message = row.message
    return HistoryEntry(
        sequence=row.sequence,
        computed_at=row.computed_at,
        health_score=row.health_score,
        band=Band(row.band),
        components=message.get("components", {}),
        tier=Tier(row.tier) if row.tier else None,
        value_score=row.value_score,
        risk=Risk(row.risk) if row.risk else None,
        stage=Stage(row.stage) if row.stage else None,
        trigger=message.get("trigger"),
        scorecard=message.get("scorecard"),
        drivers=[Driver.model_validate(d) for d in message.get("drivers", [])],
    )


def _override(row: AccountOverride, now: datetime) -> OverrideRead:
    active = row.lifted_at is None and row.lapsed_at is None and row.expires_at > now
    return OverrideRead(
        id=row.id,
        field="band" if row.field == "band" else "tier",
        value=row.value,
        reason=row.reason,
        created_by=row.created_by,
        created_with_key=row.created_with_key,
        created_at=row.created_at,
        expires_at=row.expires_at,
        active=active,
        lifted_at=row.lifted_at,
        lifted_by=row.lifted_by,
        lifted_with_key=row.lifted_with_key,
        lift_reason=row.lift_reason,
        lapsed_at=row.lapsed_at,
    )
