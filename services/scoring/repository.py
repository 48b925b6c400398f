"""Queries of the scoring service. The caller owns the session and the commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

import orjson
from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.domain import AccountState, Assessment, Portfolio, account_facts
from services.scoring.models import (
    ATTENTION_DROP,
    ATTENTION_WHERE,
    SORT_NULLS_AS,
    Account,
    AccountOverride,
    PortfolioDay,
    ScoreHistory,
    sort_key,
)
from services.scoring.service import StateWrite
from shared.db import insert_rows
from shared.outbox import Backlog, OutboxRecord, backlog_of
from shared.scores import ScoreChange


async def load_states(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, AccountState]:
    """The stored states of those of these accounts that exist.

    No row lock: the fenced offsets make a batch of a replica that lost the partition
    roll back, and a state is read only after the partition was claimed."""
    # The state comes as JSON text, parsed by pydantic in one step: decoding it to
    # Python objects first and validating those took twice as long.
    as_text = cast(Account.state, Text)
    rows = await session.execute(
        select(Account.account_id, as_text).where(Account.account_id.in_(sorted(set(account_ids))))
    )
    return {account_id: AccountState.model_validate_json(text) for account_id, text in rows}


# Columns of an account that was not scored keep their values; so does the partition
# when the write does not know it (a sweep).
_SCORED = ("health_score", "band", "tier", "risk", "stage", "value_score", "stale", "score_change")
_KEEP_UNLESS_SCORED = ", ".join(
    f"{c} = CASE WHEN excluded.scored_at IS NULL THEN accounts.{c} ELSE excluded.{c} END"
    for c in (*_SCORED, "scored_at")
)
_ACCOUNT_UPSERT = (
    "ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, "
    "sequence = excluded.sequence, updated_at = excluded.updated_at, "
    "partition = COALESCE(excluded.partition, accounts.partition), owner = excluded.owner, "
    "segment = excluded.segment, mrr_minor = excluded.mrr_minor, "
    "search_name = excluded.search_name, renewal_day = excluded.renewal_day, "
    f"change_30d = excluded.change_30d, {_KEEP_UNLESS_SCORED}"
)


async def save_states(session: AsyncSession, writes: Sequence[StateWrite], now: datetime) -> None:
    """Insert or update these accounts' rows in a few statements."""
    table = Account.__table__
    assert isinstance(table, Table)
    await insert_rows(session, table, [_account_row(w, now) for w in writes], _ACCOUNT_UPSERT)


def _account_row(write: StateWrite, now: datetime) -> dict[str, object]:
    state = write.state
    facts = account_facts(state)
    return {
        "account_id": state.account_id,
        "state": state.model_dump_json(),
        "sequence": state.sequence,
        "updated_at": now,
        "partition": write.partition,
        "owner": facts.owner_csm_email,
        "segment": facts.segment,
        "mrr_minor": facts.mrr_minor,
        "search_name": search_name(facts.name),
        "renewal_day": day_number(facts.renewal_date),
        "change_30d": state.trend_30d,
        **_scored_columns(write.assessment, write.trend_7d),
    }


def search_name(name: str | None) -> str | None:
    """What a search by name matches: the name case-folded, as long as the column."""
    return name.casefold()[:200] if name else None


EPOCH = date(1970, 1, 1)


def day_number(day: date | None) -> int | None:
    """A date as the accounts table keeps it: days since 1970-01-01."""
    return (day - EPOCH).days if day is not None else None


def day_of(number: int | None) -> date | None:
    return EPOCH + timedelta(days=number) if number is not None else None


def _scored_columns(assessment: Assessment | None, trend_7d: int | None) -> dict[str, object]:
    if assessment is None:  # all NULL: the upsert keeps the stored ones
        return dict.fromkeys((*_SCORED, "scored_at"))
    return {
        "health_score": assessment.health_score,
        "band": assessment.effective_band.value,
        "tier": _value(assessment.effective_tier),
        "risk": assessment.risk.value,
        "stage": _value(assessment.stage),
        "value_score": assessment.value_score,
        "stale": assessment.stale,
        "scored_at": assessment.computed_at,
        "score_change": trend_7d,
    }


def _value(member: StrEnum | None) -> str | None:
    return member.value if member is not None else None


async def add_history(session: AsyncSession, changes: Sequence[ScoreChange]) -> None:
    """Store material changes: the history, and the outbox of ``vitals.scores``."""
    table = ScoreHistory.__table__
    assert isinstance(table, Table)
    rows = [
        {
            "account_id": change.account_id,
            "sequence": change.sequence,
            "health_score": change.health_score,
            "band": change.band.value,
            "message": change.model_dump_json(),
            "computed_at": change.computed_at,
            "tier": _value(change.tier),
            "risk": _value(change.risk),
            "stage": _value(change.stage),
            "value_score": change.value_score,
        }
        for change in changes
    ]
    await insert_rows(session, table, rows)


class ScoresOutbox:
    """The score history as the outbox of ``vitals.scores`` (``shared.outbox.OutboxTable``).

    Every replica publishes from this one outbox. The lock, taken in id order, makes
    a second replica wait for the first one's send and commit, then skip what it
    sent: an account's changes reach the topic in sequence order, so the compacted
    topic keeps its latest score. Messages are read as the JSON text they were
    stored as, and sent as is."""

    async def claim(self, session: AsyncSession, limit: int) -> list[OutboxRecord]:
        rows = await session.execute(
            select(ScoreHistory.id, ScoreHistory.account_id, cast(ScoreHistory.message, Text))
            .where(ScoreHistory.published_at.is_(None))
            .order_by(ScoreHistory.id)
            .limit(limit)
            .with_for_update()
        )
        return [
            OutboxRecord(row_id, account.encode(), message.encode())
            for row_id, account, message in rows
        ]

    async def mark_sent(
        self, session: AsyncSession, row_ids: list[int | str], now: datetime
    ) -> None:
        await session.execute(
            update(ScoreHistory)
            .where(ScoreHistory.id.in_(row_ids))
            .values(published_at=now)
            .execution_options(synchronize_session=False)
        )

    async def backlog(self, session: AsyncSession) -> Backlog:
        return await backlog_of(
            session, ScoreHistory.published_at.is_(None), ScoreHistory.computed_at
        )


# Overrides


def _active(now: datetime) -> ColumnElement[bool]:
    return and_(
        AccountOverride.lifted_at.is_(None),
        AccountOverride.lapsed_at.is_(None),
        AccountOverride.expires_at > now,
    )


async def unsettled_overrides(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[str, list[AccountOverride]]:
    """Overrides still in force (expired ones included: they lapse now), or not yet
    applied to the score (new or just lifted)."""
    in_force = and_(AccountOverride.lifted_at.is_(None), AccountOverride.lapsed_at.is_(None))
    rows = await session.scalars(
        select(AccountOverride)
        .where(
            AccountOverride.account_id.in_(sorted(set(account_ids))),
            or_(in_force, AccountOverride.pending.is_(True)),
        )
        .order_by(AccountOverride.created_at)
    )
    found: dict[str, list[AccountOverride]] = defaultdict(list)
    for row in rows:
        found[row.account_id].append(row)
    return found


async def settle_overrides(
    session: AsyncSession, account_ids: Iterable[str], lapsed: list[str], now: datetime
) -> None:
    """Mark overrides as applied to the score; those in ``lapsed`` as lapsed."""
    ids = sorted(set(account_ids))
    if lapsed:
        await session.execute(
            update(AccountOverride)
            .where(AccountOverride.id.in_(lapsed))
            .values(lapsed_at=now, pending=False)
        )
    await session.execute(
        update(AccountOverride)
        .where(AccountOverride.account_id.in_(ids), AccountOverride.pending.is_(True))
        .values(pending=False)
    )


async def accounts_needing_override_work(
    session: AsyncSession, partitions: set[int], now: datetime, limit: int
) -> list[str]:
    """Accounts with a new or lifted override to apply, or one that has expired."""
    expired = and_(
        AccountOverride.lifted_at.is_(None),
        AccountOverride.lapsed_at.is_(None),
        AccountOverride.expires_at <= now,
    )
    rows = await session.scalars(
        select(AccountOverride.account_id)
        .join(Account, Account.account_id == AccountOverride.account_id)
        .where(Account.partition.in_(sorted(partitions)))
        .where(or_(AccountOverride.pending.is_(True), expired))
        .distinct()
        .limit(limit)
    )
    return list(rows)


async def add_override(session: AsyncSession, override: AccountOverride) -> None:
    # One active override per field: a new one replaces the old (audited as lifted).
    await session.execute(
        update(AccountOverride)
        .where(
            AccountOverride.account_id == override.account_id,
            AccountOverride.field == override.field,
            _active(override.created_at),
        )
        .values(
            lifted_at=override.created_at,
            lifted_by=override.created_by,
            lifted_with_key=override.created_with_key,
            lift_reason="replaced by a newer override",
        )
    )
    session.add(override)


async def lift_overrides(
    session: AsyncSession,
    account_id: str,
    field: str | None,
    by: str,
    reason: str,
    now: datetime,
    key_name: str | None = None,
) -> int:
    conditions = [AccountOverride.account_id == account_id, _active(now)]
    if field is not None:
        conditions.append(AccountOverride.field == field)
    result = await session.execute(
        update(AccountOverride)
        .where(*conditions)
        .values(
            lifted_at=now, lifted_by=by, lifted_with_key=key_name, lift_reason=reason, pending=True
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def overrides_of(
    session: AsyncSession, account_id: str, now: datetime, *, include_inactive: bool = False
) -> Sequence[AccountOverride]:
    query = select(AccountOverride).where(AccountOverride.account_id == account_id)
    if not include_inactive:
        query = query.where(_active(now))
    return (await session.scalars(query.order_by(AccountOverride.created_at))).all()


# Sweep and portfolio


async def sweep_batch(
    session: AsyncSession, partitions: set[int], after: str | None, limit: int
) -> list[str]:
    """Account ids in ``partitions``, in id order after ``after``."""
    query = select(Account.account_id).where(Account.partition.in_(sorted(partitions)))
    if after is not None:
        query = query.where(Account.account_id > after)
    rows = await session.scalars(query.order_by(Account.account_id).limit(limit))
    return list(rows)


async def portfolio(session: AsyncSession) -> Portfolio:
    """The portfolio's figures, from the MRR of every account that has one."""
    has_mrr = Account.mrr_minor.is_not(None)
    values = await session.scalars(select(Account.mrr_minor).where(has_mrr))
    return Portfolio.of(int(v) for v in values if v is not None)


# API reads


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def history(
    session: AsyncSession,
    account_id: str,
    since: datetime | None,
    until: datetime | None,
    after_sequence: int | None,
    limit: int,
) -> Sequence[ScoreHistory]:
    query = select(ScoreHistory).where(ScoreHistory.account_id == account_id)
    if since is not None:
        query = query.where(ScoreHistory.computed_at >= since)
    if until is not None:
        query = query.where(ScoreHistory.computed_at < until)
    if after_sequence is not None:
        query = query.where(ScoreHistory.sequence > after_sequence)
    return (await session.scalars(query.order_by(ScoreHistory.sequence).limit(limit))).all()


@dataclass(frozen=True)
class AccountFilters:
    tier: list[str] | None = None
    band: list[str] | None = None
    risk: list[str] | None = None
    stage: list[str] | None = None
    owner: str | None = None
    segment: str | None = None
    stale: bool | None = None
    search: str | None = None
    """A prefix of the account's id (as written) or of its name (any case)."""
    churned: bool | None = None
    """True: only churned accounts; False: only the rest."""
    renews_from: int | None = None
    """Renewing on or after this day (``day_number``)."""
    renews_until: int | None = None
    """Renewing on or before this day (``day_number``)."""


async def list_accounts(
    session: AsyncSession,
    filters: AccountFilters,
    sort: str,
    descending: bool,
    cursor: tuple[int, str] | None,
    limit: int,
) -> Sequence[Account]:
    key = sort_key(sort)
    query = select(Account).where(*_filter_conditions(filters))
    if cursor is not None:
        # One row-value comparison, and ties by id in the sort's own direction: each
        # sort is one index walked either way (ix_accounts_by_*).
        after = tuple_(key, Account.account_id)
        mark = tuple_(literal(cursor[0]), literal(cursor[1]))
        query = query.where(after < mark if descending else after > mark)
    order = (key.desc(), Account.account_id.desc()) if descending else (key, Account.account_id)
    return (await session.scalars(query.order_by(*order).limit(limit))).all()


async def count_accounts(session: AsyncSession, filters: AccountFilters, most: int) -> int:
    """How many accounts the filters find, counted up to ``most`` (a count of a million
    rows costs a scan of them; past ``most`` the list says "more than")."""
    found = select(literal(1)).select_from(Account).where(*_filter_conditions(filters))
    counted = select(func.count()).select_from(found.limit(most).subquery())
    return int(await session.scalar(counted) or 0)


_SORTED_ATTRIBUTE = {
    "score": "health_score",
    "change": "score_change",
    "mrr": "mrr_minor",
    "renewal": "renewal_day",
}


def sort_value(row: Account, sort: str) -> int:
    value = getattr(row, _SORTED_ATTRIBUTE[sort])
    return SORT_NULLS_AS if value is None else int(value)


def _filter_conditions(filters: AccountFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for column, values in (
        (Account.tier, filters.tier),
        (Account.band, filters.band),
        (Account.risk, filters.risk),
        (Account.stage, filters.stage),
    ):
        if values:
            conditions.append(column.in_(values))
    if filters.owner is not None:
        conditions.append(Account.owner == filters.owner)
    if filters.segment is not None:
        conditions.append(Account.segment == filters.segment)
    if filters.stale is not None:
        conditions.append(Account.stale.is_(filters.stale))
    if filters.churned is not None:
        churned = Account.stage == "churned"
        conditions.append(churned if filters.churned else Account.stage.is_distinct_from("churned"))
    if filters.renews_from is not None:
        conditions.append(Account.renewal_day >= filters.renews_from)
    if filters.renews_until is not None:
        conditions.append(Account.renewal_day <= filters.renews_until)
    if filters.search:
        conditions.append(
            or_(
                Account.account_id.startswith(filters.search, autoescape=True),
                Account.search_name.startswith(filters.search.casefold(), autoescape=True),
            )
        )
    return conditions


# The attention list


ATTENTION_RENEWAL_DAYS = 60
"""Not green and renewing within this many days: on the attention list."""
_TIER_RANK = case({"S": 0, "A": 1, "B": 2, "C": 3}, value=Account.tier, else_=4)
_RISK_RANK = case({"high": 0, "medium": 1}, value=Account.risk, else_=2)
ATTENTION_COLUMNS = (
    Account.account_id,
    Account.health_score,
    Account.band,
    Account.tier,
    Account.risk,
    Account.stage,
    Account.owner,
    Account.segment,
    Account.mrr_minor,
    Account.score_change,
    Account.value_score,
    Account.stale,
    Account.scored_at,
    Account.renewal_day,
    Account.change_30d,
)


@dataclass(frozen=True)
class AttentionRow:
    """One account of the attention list: its columns (``ATTENTION_COLUMNS``), its name
    and its churn-risk reasons, most severe first."""

    columns: dict[str, object]
    name: str | None
    reasons: list[str]


async def attention(
    session: AsyncSession, scope: PortfolioScope, today: date, limit: int
) -> list[AttentionRow]:
    """The accounts that need attention first, not churned: high risk on any tier,
    medium risk on S and A, renewing within ``ATTENTION_RENEWAL_DAYS`` and not green,
    down ``ATTENTION_DROP`` points or more in 30 days. Most valuable tiers first, then
    the riskiest, the soonest renewal, the biggest drop.

    One statement over the partial index ix_accounts_attention (only the accounts that
    may need attention, by owner), then the names and reasons of the ``limit`` found:
    the state's JSON is read for those alone."""
    first = day_number(today)
    assert first is not None
    renewing = and_(
        Account.band != "green",
        Account.renewal_day >= first,
        Account.renewal_day <= first + ATTENTION_RENEWAL_DAYS,
    )
    needs = or_(
        Account.risk == "high",
        and_(Account.risk == "medium", Account.tier.in_(("S", "A"))),
        Account.change_30d <= ATTENTION_DROP,
        renewing,
    )
    in_scope = _filter_conditions(AccountFilters(owner=scope.owner, segment=scope.segment))
    query = (
        select(*ATTENTION_COLUMNS)
        .where(ATTENTION_WHERE, needs, *in_scope)
        .order_by(
            _TIER_RANK,
            _RISK_RANK,
            func.coalesce(Account.renewal_day, first + 100_000),
            func.coalesce(Account.change_30d, 0),
            Account.account_id,
        )
        .limit(limit)
    )
    found = [dict(row._mapping) for row in await session.execute(query)]
    if not found:
        return []
    name = Account.state[("traits", "name", 0)].as_string()
    reasons = func.coalesce(
        Account.state[("current", "risk_reasons")].as_json(),
        Account.state[("last", "risk_reasons")].as_json(),
    )
    ids = [str(row["account_id"]) for row in found]
    details = {
        account_id: (account_name, said)
        for account_id, account_name, said in await session.execute(
            select(Account.account_id, name, reasons).where(Account.account_id.in_(ids))
        )
    }
    rows = []
    for columns in found:
        account_name, said = details.get(str(columns["account_id"]), (None, None))
        listed = [str(r) for r in said] if isinstance(said, list) else []
        rows.append(AttentionRow(columns, account_name, listed))
    return rows


PortfolioFigures = tuple[str | None, str | None, str | None, int, int]
"""(tier, band, risk, accounts, summed MRR) of one combination of tier, band and risk."""
KeptFigures = dict[tuple[str, str], list[list[str | int]]]
"""A kept day's figures by (owner, segment), '' for none: ``[[tier, band, risk,
accounts, mrr_minor], ...]`` with '' for none."""
PORTFOLIO_DAYS_KEPT = 400
CHURNED = "churned"
"""The band and risk the figures give a churned account: a row of its own, out of the
band and risk figures of the accounts a CSM can still act on."""
_IS_CHURNED = Account.stage == "churned"
_COMBINATION = (
    Account.tier,
    case((_IS_CHURNED, literal(CHURNED)), else_=Account.band),
    case((_IS_CHURNED, literal(CHURNED)), else_=Account.risk),
)
_SUMS = (func.count(), func.coalesce(func.sum(Account.mrr_minor), 0))


@dataclass(frozen=True)
class PortfolioScope:
    """Whose accounts: one owner's, one segment's, both, or (neither) everyone's."""

    owner: str | None = None
    segment: str | None = None

    @property
    def everyone(self) -> bool:
        return self.owner is None and self.segment is None


async def portfolio_figures(
    session: AsyncSession, scope: PortfolioScope = PortfolioScope()
) -> list[PortfolioFigures]:
    """The figures of every tier, band and risk combination of the accounts in scope."""
    in_scope = _filter_conditions(AccountFilters(owner=scope.owner, segment=scope.segment))
    query = select(*_COMBINATION, *_SUMS).where(*in_scope).group_by(*_COMBINATION)
    rows = await session.execute(query)
    return [(tier, band, risk, int(n), int(mrr or 0)) for tier, band, risk, n, mrr in rows]


async def record_portfolio_day(session: AsyncSession, day: date) -> bool:
    """Keep the portfolio as it is now as ``day``'s, per owner and segment, unless
    ``day`` has it (every replica's sweep asks; the first one adds it up)."""
    kept = select(PortfolioDay.day).where(PortfolioDay.day == day).limit(1)
    if await session.scalar(kept) is not None:
        return False
    scope = (Account.owner, Account.segment)
    query = select(*scope, *_COMBINATION, *_SUMS).group_by(*scope, *_COMBINATION)
    figures: KeptFigures = defaultdict(list)
    for owner, segment, tier, band, risk, n, mrr in await session.execute(query):
        combination: list[str | int] = [tier or "", band or "", risk or "", int(n), int(mrr or 0)]
        figures[owner or "", segment or ""].append(combination)
    await keep_portfolio_day(session, day, figures)
    return True


async def keep_portfolio_day(session: AsyncSession, day: date, figures: KeptFigures) -> None:
    """Keep ``day``'s figures (a day kept already stays as it was); days past
    ``PORTFOLIO_DAYS_KEPT`` are dropped."""
    rows = [
        {"day": day, "owner": owner, "segment": segment, "figures": orjson.dumps(found).decode()}
        for (owner, segment), found in figures.items()
    ]
    table = PortfolioDay.__table__
    assert isinstance(table, Table)
    await insert_rows(session, table, rows, "ON CONFLICT DO NOTHING")
    horizon = day - timedelta(days=PORTFOLIO_DAYS_KEPT)
    await session.execute(delete(PortfolioDay).where(PortfolioDay.day < horizon))


async def portfolio_day(
    session: AsyncSession, on_or_before: date, before: date, scope: PortfolioScope
) -> tuple[date, list[PortfolioFigures]] | None:
    """The latest kept day on or before ``on_or_before`` (else, for a portfolio younger
    than that, the earliest kept day before ``before``) with the figures of the
    accounts in scope then; None when there is none."""
    day = await session.scalar(
        select(func.max(PortfolioDay.day)).where(PortfolioDay.day <= on_or_before)
    )
    if day is None:
        day = await session.scalar(
            select(func.min(PortfolioDay.day)).where(PortfolioDay.day < before)
        )
    if day is None:
        return None
    query = select(PortfolioDay.figures).where(PortfolioDay.day == day)
    if scope.owner is not None:
        query = query.where(PortfolioDay.owner == scope.owner)
    if scope.segment is not None:
        query = query.where(PortfolioDay.segment == scope.segment)
    found = [
        _kept(combination) for figures in await session.scalars(query) for combination in figures
    ]
    return day, found


def _kept(combination: list[str | int]) -> PortfolioFigures:
    """A kept combination's figures, '' read back as None."""
    tier, band, risk, n, mrr = combination
    return (str(tier) or None, str(band) or None, str(risk) or None, int(n), int(mrr))
