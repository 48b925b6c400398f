"""Stripe webhook events mapped to billing events. Pure.

The event's ``id`` (``evt_...``) is the ``event_id``, so Stripe's retries of one
event are stored once; its ``type`` is the event name and ``created`` its time.

The account is, in order: the configured customer -> account mapping; the
configured metadata key on the customer (the customer object when the payload
carries it, else what the last ``customer.created``/``customer.updated`` event said,
remembered by the shell); on the object itself, or on its subscription. An event whose
customer has none of these is not an account of its own: ``map_stripe`` hands it back
as ``unmapped``, for ingest to keep aside until the customer is mapped (a dispute, which
names no customer, falls back to its charge id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal, TypedDict

from services.ingest.domain import (
    BodyRejected,
    Item,
    Limits,
    Rejection,
    load_json,
    to_event,
)
from services.ingest.reasons import Reason
from shared.events import Event, PaymentOutcome, SubscriptionStatus

SUBSCRIPTION_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
)
INVOICE_PAYMENTS = {
    "invoice.paid": PaymentOutcome.paid,
    "invoice.payment_failed": PaymentOutcome.failed,
    "invoice.payment_action_required": PaymentOutcome.action_required,
}
CHARGE_TYPES = ("charge.refunded", "charge.dispute.created")
EVENT_TYPES = (*SUBSCRIPTION_TYPES, *INVOICE_PAYMENTS, *CHARGE_TYPES)
UNMAPPED = "stripe_customer"
"""What resolved an account that is only the Stripe customer's id: no mapping, no
metadata. Such an event is kept aside (``map_stripe``), never an account of its own."""
# Not billing events: they tell which account a customer is (its metadata).
CUSTOMER_TYPES = ("customer.created", "customer.updated")

STATUSES = {
    "trialing": SubscriptionStatus.trialing,
    "active": SubscriptionStatus.active,
    "past_due": SubscriptionStatus.past_due,
    "unpaid": SubscriptionStatus.unpaid,
    "paused": SubscriptionStatus.paused,
    "canceled": SubscriptionStatus.canceled,
    # The first payment of an incomplete subscription has not succeeded yet.
    "incomplete": SubscriptionStatus.past_due,
    "incomplete_expired": SubscriptionStatus.canceled,
}
# Months per unit of a price's recurring interval.
MONTHS_PER = {
    "day": Decimal(12) / Decimal(365),
    "week": Decimal(12) / Decimal(52),
    "month": Decimal(1),
    "year": Decimal(12),
}
NO_REVENUE = (SubscriptionStatus.canceled, SubscriptionStatus.paused)
# Amounts an event keeps only with their currency.
AMOUNTS: tuple[Literal["amount_minor", "mrr_minor"], ...] = ("amount_minor", "mrr_minor")


class Billing(TypedDict, total=False):
    """An event's billing facts, as a subscription, an invoice or a charge gives them."""

    subscription_status: SubscriptionStatus | None
    mrr_minor: int | None
    currency: str | None
    seats: int | None
    plan: str | None
    renewal_date: date | None
    term_months: int | None
    subscription_started_on: date | None
    cancel_at_period_end: bool | None
    amount_minor: int | None
    payment: PaymentOutcome
    invoice_due_on: date | None


@dataclass(frozen=True)
class StripeAccounts:
    """How a Stripe customer becomes a Vitals account."""

    metadata_key: str = "vitals_account_id"
    mapping: Mapping[str, str] = field(default_factory=dict)


class TimeOutOfRange(ValueError):
    """A Unix time that no UTC date holds (year 10000 and on, or before year 1)."""


@dataclass(frozen=True)
class StripeEvent:
    """A webhook body read as a Stripe event: its id, type, time and ``data.object``.
    ``unreadable`` says why the event cannot be used when its ``created`` cannot be."""

    id: str
    type: object
    created: datetime | None
    object: dict[str, object]
    livemode: bool | None
    body: bytes
    unreadable: str | None = None


@dataclass(frozen=True)
class CustomerAccount:
    """What a ``customer.*`` event says of its customer's account (None: not set)."""

    customer_id: str
    account_id: str | None
    as_of: datetime


def read_stripe_event(body: bytes) -> StripeEvent:
    event = load_json(body)
    if not isinstance(event, dict) or not _text(event.get("id")):
        message = "a Stripe event must be a JSON object with an id"
        raise BodyRejected(Rejection(Reason.invalid_body, message, body))
    try:
        created, unreadable = _time(event.get("created"), "created"), None
    except TimeOutOfRange as exc:
        created, unreadable = None, str(exc)
    return StripeEvent(
        id=str(event["id"]).strip(),
        type=event.get("type"),
        created=created,
        object=_object(_object(event.get("data")).get("object")),
        livemode=_bool(event.get("livemode")),
        body=body,
        unreadable=unreadable,
    )


@dataclass(frozen=True)
class UnmappedCustomerEvent:
    """A billing event of a customer no account is known for: kept aside by ingest (not
    an account of its own), listed, and published once the customer is mapped."""

    customer_id: str
    event: Event
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class StripeMapped:
    """What one Stripe event gives: items to publish, a customer link to remember, and
    the event kept aside when its customer has no account yet."""

    items: list[Item]
    learned: CustomerAccount | None = None
    unmapped: UnmappedCustomerEvent | None = None


def needs_known_account(event: StripeEvent) -> bool:
    """Whether ``map_stripe`` wants the customer's stored account (not for ``customer.*``)."""
    return event.type not in CUSTOMER_TYPES


def map_stripe(
    event: StripeEvent,
    accounts: StripeAccounts,
    known_account: str | None,
    received_at: datetime,
    limits: Limits,
) -> StripeMapped:
    """One Stripe event through the whole mapping, the same for the webhook and the
    backtest: a ``customer.*`` event only teaches its customer's account; any other
    event is mapped, and teaches the link its object carries when that is news."""
    if event.unreadable is not None:
        rejection = Rejection(Reason.invalid_event, event.unreadable, event.body, event_id=event.id)
        return StripeMapped([rejection])
    said = customer_account(event, accounts)
    if said is not None:
        return StripeMapped([], said)
    link = customer_link(event, accounts)
    learned = link if link is not None and link.account_id != known_account else None
    items = map_stripe_event(event, accounts, known_account, received_at, limits)
    unmapped = _unmapped(event, items)
    if unmapped is not None:
        rest = [item for item in items if item is not unmapped.event]
        return StripeMapped(rest, learned, unmapped)
    return StripeMapped(items, learned)


def _unmapped(event: StripeEvent, items: list[Item]) -> UnmappedCustomerEvent | None:
    """The event of ``items`` whose account is only its Stripe customer's id, if any."""
    for item in items:
        if isinstance(item, Event) and item.properties.get("account_from") == UNMAPPED:
            obj = event.object
            customer = _object(obj.get("customer"))
            email = _text(obj.get("customer_email")) or _text(customer.get("email"))
            name = _text(obj.get("customer_name")) or _text(customer.get("name"))
            return UnmappedCustomerEvent(item.account_id, item, email, name)
    return None


def customer_account(event: StripeEvent, accounts: StripeAccounts) -> CustomerAccount | None:
    """For ``customer.created``/``updated``: the account in the customer's metadata."""
    customer = _text(event.object.get("id"))
    if event.type not in CUSTOMER_TYPES or customer is None or event.created is None:
        return None
    account = _text(_object(event.object.get("metadata")).get(accounts.metadata_key))
    return CustomerAccount(customer, account, event.created)


def customer_link(event: StripeEvent, accounts: StripeAccounts) -> CustomerAccount | None:
    """For any other event: the customer -> account link its object carries (the
    object's, its subscription's or its expanded customer's metadata), so that later
    objects that name only the customer (invoices, charges) reach the account even when
    ``customer.*`` events are not subscribed. A configured mapping needs no learning."""
    customer = _customer_id(event.object)
    if customer is None or event.created is None or customer in accounts.mapping:
        return None
    for _, metadata in _metadata_sources(event.object):
        account = _text(metadata.get(accounts.metadata_key))
        if account is not None:
            return CustomerAccount(customer, account, event.created)
    return None


def customer_of(event: StripeEvent) -> str | None:
    return _customer_id(event.object)


def map_stripe_event(
    event: StripeEvent,
    accounts: StripeAccounts,
    known_account: str | None,
    received_at: datetime,
    limits: Limits,
) -> list[Item]:
    """A Stripe event to a billing event, or why not. ``known_account`` is the account
    the customer's metadata gave in an earlier ``customer.*`` event, if any.

    An amount without a currency cannot be kept, but the rest of the object can (a
    subscription's status, seats and renewal; an invoice's payment outcome): the event
    keeps it, and a second item dead-letters the amounts it had to leave out."""
    body, event_type = event.body, event.type
    if event_type not in EVENT_TYPES:
        message = f"Stripe event type {event_type!r} is not mapped; map: {', '.join(EVENT_TYPES)}"
        return [Rejection(Reason.unsupported_type, message, body, event_id=event.id)]
    if not event.object:
        message = "the Stripe event has no data.object"
        return [Rejection(Reason.invalid_event, message, body, event_id=event.id)]
    try:
        billing = BILLING[_family(event_type)](event.object, event_type)
    except TimeOutOfRange as exc:
        return [Rejection(Reason.invalid_event, str(exc), body, event_id=event.id)]
    dropped = _amounts_without_currency(billing)
    account, resolved_by = resolve_account(event.object, accounts, known_account)
    fields = {
        "event_id": event.id,
        "account_id": account,
        "kind": "billing",
        "name": event_type,
        "occurred_at": event.created or received_at,
        "billing": billing,
        "properties": _properties(event, resolved_by),
    }
    item = to_event(fields, body, received_at, limits)
    if not dropped or isinstance(item, Rejection):
        return [item]
    amounts = ", ".join(f"{name} {value}" for name, value in dropped.items())
    message = f"left out of the event, for want of a currency: {amounts}"
    return [item, Rejection(Reason.invalid_event, message, body, (), account, event.id)]


def _amounts_without_currency(billing: Billing) -> dict[str, int]:
    """Take out of ``billing`` the amounts it cannot keep without a currency."""
    if billing.get("currency") is not None:
        return {}
    dropped: dict[str, int] = {}
    for name in AMOUNTS:
        if (amount := billing.get(name)) is not None:
            dropped[name] = amount
            del billing[name]
    return dropped


def resolve_account(
    obj: Mapping[str, object], accounts: StripeAccounts, known_account: str | None = None
) -> tuple[str, str]:
    """The account of a Stripe object, and what decided it."""
    customer = _customer_id(obj)
    if customer is not None and customer in accounts.mapping:
        return accounts.mapping[customer], "mapping"
    sources = _metadata_sources(obj)
    for source, metadata in sources[:1]:
        account = _text(metadata.get(accounts.metadata_key))
        if account is not None:
            return account, source
    if known_account is not None:
        return known_account, "customer_metadata"
    for source, metadata in sources[1:]:
        account = _text(metadata.get(accounts.metadata_key))
        if account is not None:
            return account, source
    if customer is not None:
        return customer, UNMAPPED
    charge = _id_of(obj.get("charge"))
    return charge or _text(obj.get("id")) or "stripe:unknown", "stripe_charge"


def monthly_amount(price: Mapping[str, object]) -> Decimal | None:
    """What one unit of a recurring ``price`` brings per month; None when not a flat rate."""
    recurring = _object(price.get("recurring"))
    interval = recurring.get("interval")
    if not isinstance(interval, str) or interval not in MONTHS_PER:
        return None  # not one of Stripe's intervals (a list or object is no key)
    unit = _decimal(price.get("unit_amount"))
    if unit is None:
        unit = _decimal(price.get("unit_amount_decimal"))
    count = _decimal(recurring.get("interval_count")) or Decimal(1)
    if unit is None or count <= 0:
        return None
    return unit / (MONTHS_PER[interval] * count)


def _subscription(sub: Mapping[str, object], event_type: str) -> Billing:
    item_list = _object(sub.get("items"))
    items = [_object(i) for i in _list(item_list.get("data"))]
    licensed = [i for i in items if _usage_type(i) != "metered"]
    # A payload lists a subscription's first items only: sums over a part would be wrong.
    complete = item_list.get("has_more") is not True
    status = _status(sub, event_type)
    currency = _currency(sub.get("currency")) or _first_currency(licensed)
    mrr = 0 if status in NO_REVENUE else (_mrr(licensed, sub) if complete else None)
    return {
        "subscription_status": status,
        "mrr_minor": mrr,
        "currency": currency,
        "seats": _seats(licensed, sub) if complete else None,
        "plan": _plan(licensed, sub),
        "renewal_date": _date(_period_end(sub, items), "current_period_end"),
        "term_months": _term_months(licensed),
        "subscription_started_on": _date(sub.get("start_date"), "start_date"),
        "cancel_at_period_end": _cancellation_scheduled(sub),
    }


def _invoice(invoice: Mapping[str, object], event_type: str) -> Billing:
    outcome = INVOICE_PAYMENTS[event_type]
    amount = invoice.get("amount_paid" if outcome is PaymentOutcome.paid else "amount_due")
    due = None
    if outcome is not PaymentOutcome.paid:
        finalized = _object(invoice.get("status_transitions")).get("finalized_at")
        due = _date(invoice.get("due_date") or finalized or invoice.get("created"), "due_date")
    billing = _payment(amount, invoice.get("currency"), outcome)
    billing["invoice_due_on"] = due
    return billing


def _charge(obj: Mapping[str, object], event_type: str) -> Billing:
    if event_type == "charge.refunded":
        return _payment(obj.get("amount_refunded"), obj.get("currency"), PaymentOutcome.refunded)
    return _payment(obj.get("amount"), obj.get("currency"), PaymentOutcome.disputed)


def _payment(amount: object, currency: object, outcome: PaymentOutcome) -> Billing:
    return {"amount_minor": _int(amount), "currency": _currency(currency), "payment": outcome}


BILLING: dict[str, Callable[[Mapping[str, object], str], Billing]] = {
    "subscription": _subscription,
    "invoice": _invoice,
    "charge": _charge,
}


def _family(event_type: str) -> str:
    if event_type in SUBSCRIPTION_TYPES:
        return "subscription"
    return "invoice" if event_type in INVOICE_PAYMENTS else "charge"


def _cancellation_scheduled(sub: Mapping[str, object]) -> bool | None:
    # Newer API versions schedule a cancellation with cancel_at rather than the flag.
    if _int(sub.get("cancel_at")) is not None:
        return True
    return _bool(sub.get("cancel_at_period_end"))


def _status(sub: Mapping[str, object], event_type: str) -> SubscriptionStatus | None:
    if event_type == "customer.subscription.deleted":
        return SubscriptionStatus.canceled
    if event_type == "customer.subscription.paused":
        return SubscriptionStatus.paused
    status = sub.get("status")
    return STATUSES.get(status) if isinstance(status, str) else None


def _mrr(licensed: list[dict[str, object]], sub: Mapping[str, object]) -> int | None:
    total = Decimal(0)
    for item in licensed:
        per_unit = monthly_amount(_object(item.get("price") or item.get("plan")))
        if per_unit is None:
            return None  # tiered or one-off pricing: MRR unknown, not zero
        total += per_unit * (_decimal(item.get("quantity")) or Decimal(0))
    if not licensed:
        return None
    coupon = _object(_object(sub.get("discount")).get("coupon"))
    percent_off = _decimal(coupon.get("percent_off"))
    if percent_off is not None:
        total = total * (Decimal(100) - percent_off) / Decimal(100)
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _seats(licensed: list[dict[str, object]], sub: Mapping[str, object]) -> int | None:
    quantities = [q for i in licensed if (q := _int(i.get("quantity"))) is not None]
    return sum(quantities) if quantities else _int(sub.get("quantity"))


def _plan(licensed: list[dict[str, object]], sub: Mapping[str, object]) -> str | None:
    candidates = [_object(i.get("price") or i.get("plan")) for i in licensed]
    candidates.append(_object(sub.get("plan")))
    for price in candidates:
        for key in ("nickname", "lookup_key", "product", "id"):
            if (name := _text(price.get(key))) is not None:
                return name
    return None


def _period_end(sub: Mapping[str, object], items: list[dict[str, object]]) -> object:
    # Newer Stripe API versions keep the period on each item instead of the subscription.
    ends = [e for i in items if (e := _int(i.get("current_period_end"))) is not None]
    return sub.get("current_period_end") or (max(ends) if ends else None)


def _term_months(licensed: list[dict[str, object]]) -> int | None:
    """Months per billing period of the subscription's price (none below a month)."""
    for item in licensed:
        recurring = _object(_object(item.get("price") or item.get("plan")).get("recurring"))
        count = _int(recurring.get("interval_count")) or 1
        months = {"month": 1, "year": 12}.get(str(recurring.get("interval")))
        if months is not None and 1 <= months * count <= 120:
            return months * count
    return None


def _usage_type(item: Mapping[str, object]) -> object:
    price = _object(item.get("price") or item.get("plan"))
    return _object(price.get("recurring")).get("usage_type") or price.get("usage_type")


def _first_currency(items: list[dict[str, object]]) -> str | None:
    for item in items:
        code = _currency(_object(item.get("price") or item.get("plan")).get("currency"))
        if code is not None:
            return code
    return None


def _metadata_sources(obj: Mapping[str, object]) -> list[tuple[str, Mapping[str, object]]]:
    parent = _object(obj.get("parent"))
    subscription_details = _object(
        obj.get("subscription_details") or parent.get("subscription_details")
    )
    return [
        ("customer_metadata", _object(_object(obj.get("customer")).get("metadata"))),
        ("metadata", _object(obj.get("metadata"))),
        ("subscription_metadata", _object(subscription_details.get("metadata"))),
        ("subscription_metadata", _object(_object(obj.get("subscription")).get("metadata"))),
    ]


def _properties(event: StripeEvent, resolved_by: str) -> dict[str, object]:
    obj = event.object
    found = {
        "stripe_event_id": event.id,
        "stripe_object_id": _text(obj.get("id")),
        "stripe_customer": _customer_id(obj),
        "stripe_charge": _id_of(obj.get("charge")),
        "stripe_subscription": _id_of(obj.get("subscription")),
        "livemode": event.livemode,
        "account_from": resolved_by,
    }
    return {k: v for k, v in found.items() if v is not None}


def _customer_id(obj: Mapping[str, object]) -> str | None:
    return _id_of(obj.get("customer"))


def _id_of(value: object) -> str | None:
    """The id of a Stripe reference: an id string, or an expanded object."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _time(value: object, name: str) -> datetime | None:
    """``value`` as a Unix time; raises ``TimeOutOfRange`` naming field ``name``."""
    seconds = _int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise TimeOutOfRange(f"{name} {seconds} is outside the range of dates") from None


def _date(value: object, name: str) -> date | None:
    moment = _time(value, name)
    return moment.date() if moment is not None else None


def _currency(value: object) -> str | None:
    return value.upper() if isinstance(value, str) and len(value) == 3 else None


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
