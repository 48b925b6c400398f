"""What ``GET /v1/stripe/unmapped-customers`` answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class UnmappedEventRead(BaseModel):
    event_id: str = Field(description="Stripe's evt_... id.")
    name: str = Field(description="The Stripe event type.")
    occurred_at: datetime
    amount_minor: int | None = Field(description="Paid, due or refunded, in minor units.")
    currency: str | None


class UnmappedCustomerRead(BaseModel):
    customer_id: str = Field(description="cus_...")
    email: str | None = Field(description="As the latest event that names it says.")
    name: str | None
    first_seen: datetime = Field(description="Time of its oldest kept event.")
    last_seen: datetime = Field(description="Time of its newest kept event.")
    event_count: int = Field(description="Billing events kept aside for it.")
    mrr_minor: int | None = Field(description="From its latest subscription event, if any.")
    currency: str | None = Field(description="The currency of mrr_minor.")
    last_event: UnmappedEventRead


class UnmappedCustomerList(BaseModel):
    """Stripe customers with billing events but no Vitals account: not scored until
    mapped (VITALS_INGEST_STRIPE_CUSTOMER_ACCOUNTS, or the account in the customer's
    metadata); once mapped, their kept events are published as the account's."""

    customers: list[UnmappedCustomerRead]
