"""The durable Stripe customer -> account mapping, from ``customer.*`` events."""

from __future__ import annotations

from services.ingest.database import transaction
from services.ingest.sources.stripe import repository
from services.ingest.sources.stripe.mapping import CustomerAccount
from shared.clock import Clock
from shared.db import SessionFactory
from shared.events import is_storable_id


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
