"""A labelled, simulated portfolio for the backtest: deterministic by seed.

What real portfolios hold and a naive model trips on: Pareto revenue; a weekly
rhythm; monthly and annual plans; accounts onboarding over weeks; accounts with no
billing data; slow declines of 45-120 days before cancelling; abrupt cancellations;
holiday dips that recover; failed payments retried and paid (dunning); expansions
where seats grow before users do; feature names as the product names them
("Report Exported"), not as a scorecard spells them.

Writes to a folder, each file in event-time order:

- ``segment.jsonl``: identify, group and track calls, as Segment's Tracking API
  receives them (a user's identify comes before their group call, as at sign-up);
- ``stripe.jsonl``: Stripe Event objects, as webhooks deliver them (invoices name only
  the customer and the subscription);
- ``outcomes.csv``: ``account_id,churned_on,kind`` for every account that cancelled
  (``kind``: ``decline`` or ``abrupt``);
- ``accounts.csv``: what each account was made of, for reading the results.

``python -m bench.portfolio --out var/backtest --accounts 1000 --days 180 --seed 1``
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

START = date(2026, 1, 5)
KEY_FEATURES = ("Report Exported", "Dashboard Shared", "Integration Connected", "Alert Configured")
OTHER_FEATURES = (
    "Record Created",
    "Record Updated",
    "Search Performed",
    "Comment Added",
    "File Uploaded",
    "Dashboard Viewed",
)
WEEKDAY_ACTIVITY = (1.0, 1.0, 1.0, 0.95, 0.8, 0.12, 0.08)
PLANS = (("starter", 2_000, 0), ("team", 3_500, 10), ("enterprise", 6_000, 50))
ANNUAL_MONTHS_PAID = 10  # an annual plan costs ten months
CSMS = 12
METADATA_KEY = "vitals_account_id"


@dataclass
class Account:
    """One simulated customer and the story it will live through."""

    account_id: str
    started_on: date
    seats: int
    utilisation: float
    annual: bool
    billed: bool
    fate: str  # retained | decline | abrupt
    churned_on: date | None = None
    decline_from: date | None = None
    floor: float = 1.0
    dip: tuple[date, date, float] | None = None
    failed_on: date | None = None
    expansion: tuple[date, int] | None = None
    ramp_days: int = 0
    scheduled_cancel_on: date | None = None
    failed: bool = False
    users: list[User] = field(default_factory=list)
    sequence: int = 0

    @property
    def customer(self) -> str:
        return f"cus_{self.account_id}"

    @property
    def subscription(self) -> str:
        return f"sub_{self.account_id}"

    def plan(self, seats: int) -> tuple[str, int]:
        name, price = next((n, p) for n, p, at in reversed(PLANS) if seats >= at)
        return name, price

    def next_id(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}_{self.account_id}_{self.sequence}"


@dataclass
class User:
    user_id: str
    joins_on: date
    quits_on: date | None
    activity: float
    features: tuple[str, ...]
    rate: float  # events per active day


def build(accounts: int, days: int, seed: int) -> list[Account]:
    rng = random.Random(seed)
    return [_account(rng, n, days) for n in range(accounts)]


def _account(rng: random.Random, n: int, days: int) -> Account:
    new = rng.random() < 0.15
    started = (
        START + timedelta(rng.randrange(0, days - 45))
        if new
        else START - timedelta(rng.randrange(60, 900))
    )
    seats = min(400, max(3, round(1 + 2.5 * rng.paretovariate(1.3))))
    account = Account(
        account_id=f"acct-{n:05d}",
        started_on=started,
        seats=seats,
        utilisation=rng.uniform(0.55, 0.95),
        annual=rng.random() < 0.4,
        billed=rng.random() >= 0.1,
        fate=_fate(rng, new),
        ramp_days=rng.randrange(14, 43) if new else 0,
    )
    first_day = max(START, started)
    _plan_fate(rng, account, first_day, days)
    _plan_events(rng, account, first_day, days)
    account.users = _users(rng, account, first_day)
    return account


def _fate(rng: random.Random, new: bool) -> str:
    draw = rng.random()
    if new:
        return "retained" if draw < 0.95 else "abrupt"
    return "decline" if draw < 0.16 else "abrupt" if draw < 0.22 else "retained"


def _plan_fate(rng: random.Random, account: Account, first_day: date, days: int) -> None:
    end = START + timedelta(days)
    if account.fate == "decline":
        length = rng.randrange(45, 121)
        latest = (end - first_day).days - 1
        churn_after = rng.randrange(min(length + 30, latest), latest + 1)
        account.churned_on = first_day + timedelta(churn_after)
        account.decline_from = account.churned_on - timedelta(length)
        account.floor = rng.uniform(0.05, 0.3)
    elif account.fate == "abrupt":
        account.churned_on = first_day + timedelta(rng.randrange(40, (end - first_day).days))
    if account.churned_on is not None and rng.random() < 0.5:
        account.scheduled_cancel_on = account.churned_on - timedelta(rng.randrange(3, 21))


def _plan_events(rng: random.Random, account: Account, first_day: date, days: int) -> None:
    end = START + timedelta(days)
    living = (account.churned_on or end) - first_day
    if rng.random() < 0.25 and living.days > 40:
        dip_start = first_day + timedelta(rng.randrange(20, living.days - 15))
        length = rng.randrange(5, 15)
        account.dip = (dip_start, dip_start + timedelta(length), rng.uniform(0.15, 0.5))
    if account.billed and rng.random() < 0.2:
        account.failed_on = first_day + timedelta(rng.randrange(5, max(6, living.days - 10)))
    if account.fate == "retained" and rng.random() < 0.12 and living.days > 60:
        grown = max(account.seats + 2, round(account.seats * rng.uniform(1.3, 2.0)))
        account.expansion = (first_day + timedelta(rng.randrange(20, living.days - 30)), grown)


def _users(rng: random.Random, account: Account, first_day: date) -> list[User]:
    users = []
    count = max(1, round(account.seats * account.utilisation))
    grown = account.expansion[1] if account.expansion else account.seats
    extra = max(0, round(grown * account.utilisation) - count)
    for i in range(count + extra):
        if i < count:
            joins = first_day + timedelta(rng.randrange(0, account.ramp_days + 1))
        else:  # users follow an expansion over three to five weeks
            assert account.expansion is not None
            joins = account.expansion[0] + timedelta(rng.randrange(7, 36))
        quits = None
        if account.decline_from and account.churned_on and rng.random() < 0.6:
            span = (account.churned_on - account.decline_from).days
            quits = account.decline_from + timedelta(rng.randrange(0, span))
        keys = rng.sample(KEY_FEATURES, rng.randrange(1, 4))
        others = rng.sample(OTHER_FEATURES, rng.randrange(2, 5))
        users.append(
            User(
                user_id=f"u-{account.account_id}-{i}",
                joins_on=joins,
                quits_on=quits,
                activity=rng.uniform(0.35, 0.9),
                features=(*keys, *others),
                rate=rng.uniform(1.0, 3.0),
            )
        )
    return users


# --- one day of calls ------------------------------------------------------------------


Call = tuple[datetime, str, dict[str, Any]]  # (time, file, body)


def day_calls(
    rng: random.Random, account: Account, day: date, usage_scale: float = 1.0
) -> Iterator[Call]:
    if day < account.started_on:
        return
    if account.churned_on is not None and day > account.churned_on:
        return
    yield from _billing(rng, account, day)
    multiplier = _multiplier(account, day)
    weekday = WEEKDAY_ACTIVITY[day.weekday()]
    for index, user in enumerate(account.users):
        if user.joins_on == day:
            yield from _sign_up(rng, account, user, day, index)
        if day < user.joins_on or (user.quits_on is not None and day >= user.quits_on):
            continue
        if rng.random() >= user.activity * weekday * min(1.0, multiplier):
            continue
        rate = user.rate * usage_scale * min(1.0, 0.5 + multiplier / 2)
        for _ in range(_poisson(rng, rate)):
            feature = rng.choice(user.features)
            yield _track(rng, account, user, day, feature)


def _multiplier(account: Account, day: date) -> float:
    m = 1.0
    if account.decline_from and account.churned_on and day >= account.decline_from:
        span = (account.churned_on - account.decline_from).days
        m = 1.0 - (1.0 - account.floor) * (day - account.decline_from).days / span
    if account.dip and account.dip[0] <= day < account.dip[1]:
        m *= account.dip[2]
    return m


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _at(rng: random.Random, day: date, hour_from: float = 8, hour_to: float = 19) -> datetime:
    seconds = rng.uniform(hour_from * 3600, hour_to * 3600)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=int(seconds))


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sign_up(
    rng: random.Random, account: Account, user: User, day: date, index: int
) -> Iterator[Call]:
    at = _at(rng, day, 7, 8)
    yield (
        at,
        "segment",
        {
            "type": "identify",
            "userId": user.user_id,
            "messageId": account.next_id("m"),
            "timestamp": _iso(at),
            "traits": {"email": f"{user.user_id}@{account.account_id}.example"},
        },
    )
    traits: dict[str, Any] = {
        "name": f"Customer {account.account_id[5:]}",
        "owner_csm_email": f"csm{int(account.account_id[5:]) % CSMS}@vitals.example",
    }
    if not account.billed:  # a CRM sync: plan and seats, no revenue
        traits |= {"plan": account.plan(account.seats)[0], "seats": account.seats}
    yield (
        at + timedelta(seconds=1),
        "segment",
        {
            "type": "group",
            "userId": user.user_id,
            "groupId": account.account_id,
            "messageId": account.next_id("m"),
            "timestamp": _iso(at + timedelta(seconds=1)),
            "traits": traits if index == 0 else {},
        },
    )


def _track(rng: random.Random, account: Account, user: User, day: date, feature: str) -> Call:
    at = _at(rng, day)
    return (
        at,
        "segment",
        {
            "type": "track",
            "userId": user.user_id,
            "event": feature,
            "messageId": account.next_id("m"),
            "timestamp": _iso(at),
            "properties": {},
        },
    )


# --- billing -----------------------------------------------------------------------------


def _billing(rng: random.Random, account: Account, day: date) -> Iterator[Call]:
    if not account.billed:
        return
    at = _at(rng, day, 1, 6)
    seats = _seats(account, day)
    if day == account.started_on or (day == START and account.started_on < START):
        kind = "created" if day == account.started_on else "updated"
        yield _subscription(account, at, f"customer.subscription.{kind}", seats, "active")
    if day == account.scheduled_cancel_on:
        yield _subscription(account, at, "customer.subscription.updated", seats, "active", True)
    if day == account.churned_on:
        yield _subscription(account, at, "customer.subscription.deleted", seats, "canceled")
        return
    if account.expansion and day == account.expansion[0]:
        yield _subscription(account, at, "customer.subscription.updated", seats, "active")
    if day > account.started_on and _anniversary(account, day):
        if account.failed_on is not None and not account.failed and day >= account.failed_on:
            account.failed = True  # one renewal fails, is retried three days later, and paid
            yield _invoice(account, at, "invoice.payment_failed", seats)
            yield _subscription(account, at, "customer.subscription.updated", seats, "past_due")
            retry = at + timedelta(days=3)
            yield _invoice(account, retry, "invoice.paid", seats)
            yield _subscription(account, retry, "customer.subscription.updated", seats, "active")
        else:
            yield _invoice(account, at, "invoice.paid", seats)
            yield _subscription(account, at, "customer.subscription.updated", seats, "active")


def _seats(account: Account, day: date) -> int:
    if account.expansion and day >= account.expansion[0]:
        return account.expansion[1]
    return account.seats


def _anniversary(account: Account, day: date) -> bool:
    start = account.started_on
    if account.annual:
        return (day.month, day.day) == (start.month, min(start.day, 28))
    return day.day == min(start.day, 28)


def _period_end(account: Account, at: datetime) -> datetime:
    day, start = at.date(), account.started_on
    months = 12 if account.annual else 1
    anchor = date(day.year, day.month, min(start.day, 28))
    if account.annual:
        anchor = date(day.year, start.month, min(start.day, 28))
    while anchor <= day:
        total = anchor.month - 1 + months
        anchor = date(anchor.year + total // 12, total % 12 + 1, anchor.day)
    return datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)


def _subscription(
    account: Account, at: datetime, kind: str, seats: int, status: str, cancel: bool = False
) -> Call:
    plan, price = account.plan(seats)
    interval = "year" if account.annual else "month"
    unit = price * ANNUAL_MONTHS_PAID if account.annual else price
    start = datetime(*account.started_on.timetuple()[:3], tzinfo=UTC)
    sub = {
        "id": account.subscription,
        "object": "subscription",
        "customer": account.customer,
        "status": status,
        "currency": "usd",
        "start_date": int(start.timestamp()),
        "current_period_end": int(_period_end(account, at).timestamp()),
        "cancel_at_period_end": cancel
        or (account.scheduled_cancel_on is not None and at.date() >= account.scheduled_cancel_on),
        "metadata": {METADATA_KEY: account.account_id},
        "items": {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": f"si_{account.account_id}",
                    "quantity": seats,
                    "price": {
                        "id": f"price_{plan}_{interval}",
                        "nickname": plan,
                        "unit_amount": unit,
                        "currency": "usd",
                        "recurring": {"interval": interval, "interval_count": 1},
                    },
                }
            ],
        },
    }
    return at, "stripe", _event(account, at, kind, sub)


def _invoice(account: Account, at: datetime, kind: str, seats: int) -> Call:
    _, price = account.plan(seats)
    amount = price * seats * (ANNUAL_MONTHS_PAID if account.annual else 1)
    paid = kind == "invoice.paid"
    invoice = {
        "id": account.next_id("in"),
        "object": "invoice",
        "customer": account.customer,
        "subscription": account.subscription,
        "currency": "usd",
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "status": "paid" if paid else "open",
        "created": int(at.timestamp()),
        "status_transitions": {"finalized_at": int(at.timestamp())},
    }
    return at, "stripe", _event(account, at, kind, invoice)


def _event(account: Account, at: datetime, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": account.next_id("evt"),
        "object": "event",
        "type": kind,
        "created": int(at.timestamp()),
        "livemode": False,
        "data": {"object": obj},
    }


# --- writing -------------------------------------------------------------------------------


def write(
    out: Path, accounts: int, days: int, seed: int, usage_scale: float = 1.0
) -> dict[str, int]:
    """Write the portfolio's files to ``out``; returns how many lines each got.
    ``usage_scale`` multiplies every user's events per active day (1 to 3 by default)."""
    out.mkdir(parents=True, exist_ok=True)
    portfolio = build(accounts, days, seed)
    rng = random.Random(seed + 1)
    counts = {"segment": 0, "stripe": 0}
    with (out / "segment.jsonl").open("wb") as segment, (out / "stripe.jsonl").open("wb") as stripe:
        files: dict[str, IO[bytes]] = {"segment": segment, "stripe": stripe}
        for offset in range(days):
            day = START + timedelta(offset)
            calls = [c for a in portfolio for c in day_calls(rng, a, day, usage_scale)]
            calls.sort(key=lambda call: call[0])
            for _, name, body in calls:
                files[name].write(orjson.dumps(body) + b"\n")
                counts[name] += 1
    _write_outcomes(out / "outcomes.csv", portfolio)
    _write_accounts(out / "accounts.csv", portfolio)
    return counts


def _write_outcomes(path: Path, portfolio: list[Account]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["account_id", "churned_on", "kind"])
        for a in portfolio:
            if a.churned_on is not None:
                writer.writerow([a.account_id, a.churned_on.isoformat(), a.fate])


def _write_accounts(path: Path, portfolio: list[Account]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "account_id",
                "started_on",
                "fate",
                "seats",
                "annual",
                "billed",
                "dip",
                "failed_payment",
                "expansion",
                "decline_days",
            ]
        )
        for a in portfolio:
            writer.writerow(
                [
                    a.account_id,
                    a.started_on.isoformat(),
                    a.fate,
                    a.seats,
                    a.annual,
                    a.billed,
                    a.dip is not None,
                    a.failed,
                    a.expansion is not None,
                    (a.churned_on - a.decline_from).days if a.decline_from and a.churned_on else "",
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/backtest"))
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--usage-scale",
        type=float,
        default=1.0,
        help="multiply each user's events per active day (the default is 1 to 3)",
    )
    args = parser.parse_args()
    counts = write(args.out, args.accounts, args.days, args.seed, args.usage_scale)
    print(f"{args.out}: {counts['segment']:,} Segment calls, {counts['stripe']:,} Stripe events")


if __name__ == "__main__":
    main()
