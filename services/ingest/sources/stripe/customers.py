"""The durable Stripe customer -> account mapping, from ``customer.*`` events, and the
billing events of customers with no account yet, kept aside until they have one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.database import Statements, transaction
from services.ingest.domain import Held, Item
from services.ingest.sources.stripe import repository
from services.ingest.sources.stripe.mapping import (
    UNMAPPED,
    CustomerAccount,
    StripeMapped,
    UnmappedCustomerEvent,
)
from services.ingest.sources.stripe.repository import UnmappedRow
from services.ingest.sources.stripe.schemas import UnmappedCustomerRead, UnmappedEventRead
from shared.clock import Clock
from shared.db import SessionFactory
from shared.events import Event, is_storable_id

TEXT_MAX = 500  # the columns' length
RELEASED_FROM = "unmapped_customer"
"""``properties.account_from`` of a kept event published once its customer was mapped."""


@dataclass(frozen=True)
class Decided:
    """A Stripe event's own items (its kept event as ``Held``), the kept events of its
    customer it releases, and what deletes them once they are published."""

    own: list[Item]
    released: list[Event]
    after_stored: Statements | None


class StripeCustomers:
    def __init__(self, sessions: SessionFactory, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def account(self, customer_id: str | None) -> str | None:
        if customer_id is None or not is_storable_id(customer_id):
            return None
        async with transaction(self._sessions) as session:
            return await repository.account_of_customer(session, customer_id)

    async def remember(self, said: CustomerAccount) -> None:
        ids = [said.customer_id] + ([said.account_id] if said.account_id else [])
        if not all(is_storable_id(i) for i in ids):
            return  # the event itself is refused by the contract, with its reason
        async with transaction(self._sessions) as session:
            await repository.save_customer_account(
                session, said.customer_id, said.account_id, said.as_of, self._clock()
            )

    async def unmapped_customers(self) -> list[UnmappedCustomerRead]:
        async with transaction(self._sessions) as session:
            rows = await repository.unmapped_rows(session)
        return summarize(rows)


async def decide(session: AsyncSession, mapped: StripeMapped, received_at: datetime) -> Decided:
    """In the transaction that claims the event ids: keep an unmapped customer's event
    aside; when the event tells the account of a customer with kept events, release
    them as that account's (deleted once published, so a failed publish loses none)."""
    own: list[Item] = list(mapped.items)
    if mapped.unmapped is not None:
        kept = mapped.unmapped
        await repository.keep_unmapped(session, _row(kept, received_at))
        own.insert(0, Held(kept.customer_id, kept.event.event_id, kept.event.to_bytes()))
    customer, account = _mapped_customer(mapped)
    if customer is None or account is None:
        return Decided(own, [], None)
    events = [Event.from_bytes(e) for e in await repository.unmapped_events_of(session, customer)]
    if not events:
        return Decided(own, [], None)
    released = [_as_account(event, account) for event in events]
    ids = [event.event_id for event in events]

    async def forget(confirming: AsyncSession) -> None:
        await repository.forget_unmapped(confirming, ids)

    return Decided(own, released, forget)


def summarize(rows: Sequence[UnmappedRow]) -> list[UnmappedCustomerRead]:
    """One entry per customer from its kept events' rows (by customer, then time);
    email, name and MRR as the newest event that gives them says."""
    customers = []
    for customer_id, grouped in groupby(rows, key=lambda row: row.customer_id):
        events = list(grouped)
        last = events[-1]
        priced = [e for e in events if e.mrr_minor is not None]
        customers.append(
            UnmappedCustomerRead(
                customer_id=customer_id,
                email=next((e.customer_email for e in reversed(events) if e.customer_email), None),
                name=next((e.customer_name for e in reversed(events) if e.customer_name), None),
                first_seen=events[0].occurred_at,
                last_seen=last.occurred_at,
                event_count=len(events),
                mrr_minor=priced[-1].mrr_minor if priced else None,
                currency=priced[-1].currency if priced else None,
                last_event=UnmappedEventRead(
                    event_id=last.event_id,
                    name=last.name,
                    occurred_at=last.occurred_at,
                    amount_minor=last.amount_minor,
                    currency=last.currency,
                ),
            )
        )
    return sorted(customers, key=lambda c: c.last_seen, reverse=True)


def _mapped_customer(mapped: StripeMapped) -> tuple[str | None, str | None]:
    """The customer this event gives an account, and the account: what a ``customer.*``
    event or an object's metadata teaches, else the account its own event resolved."""
    if mapped.learned is not None:
        return mapped.learned.customer_id, mapped.learned.account_id
    for item in mapped.items:
        if isinstance(item, Event):
            customer = item.properties.get("stripe_customer")
            if isinstance(customer, str) and item.properties.get("account_from") != UNMAPPED:
                return customer, item.account_id
    return None, None


def _row(kept: UnmappedCustomerEvent, received_at: datetime) -> dict[str, object]:
    event, billing = kept.event, kept.event.billing
    return {
        "event_id": event.event_id,
        "customer_id": kept.customer_id,
        "name": event.name,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "customer_email": kept.email and kept.email[:TEXT_MAX],
        "customer_name": kept.name and kept.name[:TEXT_MAX],
        "amount_minor": billing.amount_minor if billing else None,
        "mrr_minor": billing.mrr_minor if billing else None,
        "currency": billing.currency if billing else None,
        "event": event.to_bytes(),
    }


def _as_account(event: Event, account: str) -> Event:
    properties = {**event.properties, "account_from": RELEASED_FROM}
    return Event.model_validate(
        {**event.model_dump(), "account_id": account, "properties": properties}
    )
