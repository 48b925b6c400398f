"""``GET /v1/retention`` and ``GET /v1/renewals``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from services.scoring.api import ScoringContext
from services.scoring.retention import repository
from services.scoring.retention.cache import RecentMovements
from services.scoring.retention.computation import (
    add_months,
    month_of,
    periods_between,
    retention,
)
from services.scoring.retention.currency import RatesFile
from services.scoring.retention.schemas import (
    RenewalList,
    RenewalRead,
    RetentionPeriod,
    RetentionRead,
    Unconverted,
)
from shared.auth import Scope, authenticate
from shared.errors import invalid_request
from shared.http import DbSession, GatedRoute, Problem, app_state
from shared.scores import Band, Risk, Stage, Tier

READ = [Depends(authenticate(Scope.read))]
Rates = Annotated[RatesFile, app_state("rates")]
Kept = Annotated[RecentMovements, app_state("retention")]
Context = Annotated[ScoringContext, app_state("scoring")]
Month = Annotated[
    date | None,
    Query(description="A day of the month (YYYY-MM-DD); its month is meant."),
]
TierQuery = Annotated[Tier | None, Query(description="Only accounts of this tier (now).")]
Owner = Annotated[str | None, Query(min_length=1, max_length=320)]
Segment = Annotated[str | None, Query(min_length=1, max_length=200)]
MOST_PERIODS = 120
RANGE_PROBLEM: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "A bad range or parameter"}
}
router = APIRouter(prefix="/v1", route_class=GatedRoute, tags=["retention"])


@router.get(
    "/retention",
    dependencies=READ,
    response_model=RetentionRead,
    responses=RANGE_PROBLEM,
    summary="Gross and net revenue retention per month or quarter, in home currency",
)
async def get_retention(
    session: DbSession,
    rates_file: Rates,
    context: Context,
    recent: Kept,
    since: Month = None,
    until: Month = None,
    grain: Annotated[str, Query(pattern="^(month|quarter)$")] = "month",
    by: Annotated[repository.Dimension | None, Query(description="Group by this.")] = None,
    tier: TierQuery = None,
    owner: Owner = None,
    segment: Segment = None,
) -> RetentionRead | JSONResponse:
    """From ``since``'s month (12 months before ``until`` by default) to ``until``'s (this
    month by default); a group's figures are over the accounts in it now."""
    rates = rates_file.current()
    last = month_of(until or context.clock().date())
    first = month_of(since or add_months(last, -11))
    quarterly = grain == "quarter"
    periods = periods_between(first, last, quarterly)
    if not periods or len(periods) > MOST_PERIODS:
        return _range_problem(f"since must be before until, {MOST_PERIODS} periods at most")
    scope = repository.Scope(tier.value if tier else None, owner, segment)
    end = add_months(periods[-1], 3 if quarterly else 1)
    moves = await recent.get(
        (end, quarterly, by, scope),
        lambda: repository.movements(session, end, quarterly, by, scope),
    )
    figures = retention(moves, rates, periods[0], periods)
    return RetentionRead(
        home_currency=rates.home,
        rates_as_of=rates.as_of,
        grain=grain,
        by=by,
        periods=[
            RetentionPeriod(
                period_start=f.period,
                group=f.group,
                starting_mrr_minor=f.starting,
                new_mrr_minor=f.new,
                expansion_mrr_minor=f.expansion,
                contraction_mrr_minor=f.contraction,
                churn_mrr_minor=f.churn,
                movement_mrr_minor=f.movement,
                ending_mrr_minor=f.ending,
                grr=f.grr,
                nrr=f.nrr,
            )
            for f in figures.periods
        ],
        unconverted=[Unconverted(currency=c, mrr_minor=v) for c, v in figures.unconverted.items()],
    )


@router.get(
    "/renewals",
    dependencies=READ,
    response_model=RenewalList,
    responses=RANGE_PROBLEM,
    summary="Renewals by month: coming ones and what became of past ones",
)
async def list_renewals(
    session: DbSession,
    rates_file: Rates,
    context: Context,
    since: Month = None,
    until: Month = None,
    tier: TierQuery = None,
    owner: Owner = None,
    segment: Segment = None,
    contracts_only: Annotated[
        bool, Query(description="Only contract terms (12 months or longer), no monthly plans.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> RenewalList | JSONResponse:
    """Renewals from ``since``'s month (this month by default) to the end of
    ``until``'s (three months on by default), by date."""
    first = month_of(since or context.clock().date())
    last = add_months(month_of(until) if until else add_months(first, 2), 1)
    if last <= first:
        return _range_problem("since must be before until")
    scope = repository.Scope(tier.value if tier else None, owner, segment)
    until_day = last - timedelta(days=1)
    rows = await repository.renewals(session, first, until_day, scope, limit, contracts_only)
    rates = rates_file.current()
    listed = []
    for row in rows:
        account, outcome = row.account, row.outcome
        mrr = outcome.mrr_after_minor if outcome is not None else account.mrr_minor
        arr = mrr * 12 if mrr is not None else None
        home = rates.convert(arr, row.currency) if arr is not None and row.currency else None
        listed.append(
            RenewalRead(
                account_id=account.account_id,
                name=row.name,
                renewal_date=row.renewal_date,
                outcome=outcome.outcome if outcome is not None else None,
                term_months=row.term_months,
                currency=row.currency,
                arr_minor=arr,
                arr_home_minor=home,
                unconverted=arr is not None and home is None,
                mrr_before_minor=outcome.mrr_before_minor if outcome is not None else None,
                health_score=account.health_score,
                band=Band(account.band) if account.band else None,
                risk=Risk(account.risk) if account.risk else None,
                tier=Tier(account.tier) if account.tier else None,
                stage=Stage(account.stage) if account.stage else None,
                owner=account.owner,
            )
        )
    return RenewalList(home_currency=rates.home, renewals=listed)


def _range_problem(message: str) -> JSONResponse:
    return invalid_request([{"loc": ["query", "since"], "message": message, "type": "range"}])
