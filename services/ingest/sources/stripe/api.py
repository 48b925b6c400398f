"""``POST /v1/stripe/webhook``: Stripe billing events, authenticated by their signature.

Stripe retries any answer but 2xx for days, so a signed event that cannot be used
is still answered 200 (and dead-lettered): a retry could not fix it. Only what a
retry can fix (broker down, webhook secrets not configured yet) is answered 503.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.body import JSON
from services.ingest.http_intake import (
    Deferred,
    Parser,
    Refused,
    RequestRefused,
    item_error,
    refused_response,
)
from services.ingest.intake import Origin, Prepared
from services.ingest.openapi import BodyModels
from services.ingest.routes import Context, IngestContext
from services.ingest.schemas import ItemError
from services.ingest.sources.stripe.customers import decide
from services.ingest.sources.stripe.mapping import (
    CUSTOMER_TYPES,
    EVENT_TYPES,
    customer_of,
    map_stripe,
    needs_known_account,
    read_stripe_event,
)
from services.ingest.sources.stripe.schemas import UnmappedCustomerList
from services.ingest.sources.stripe.signature import InvalidSignature, verify_stripe_signature
from shared.auth import Scope, authenticate
from shared.http import Problem

log = logging.getLogger(__name__)

CHANNEL = "stripe"
PATH = "/v1/stripe/webhook"
ORIGIN = Origin.http(PATH)
UNMAPPED_PATH = "/v1/stripe/unmapped-customers"
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or not a valid one"},
    403: {"model": Problem, "description": "The key lacks the `read` scope"},
    429: {"model": Problem, "description": "The key is over its rate; see Retry-After"},
}
RETRY_AFTER_UNCONFIGURED_S = "300"


class StripeEventIn(BaseModel):
    """A Stripe event as Stripe posts it (only the fields Vitals reads are listed)."""

    id: str = Field(description="evt_...: Stripe's retries of one event share it.")
    type: str = Field(
        description=(
            f"Mapped to billing events: {', '.join(EVENT_TYPES)}. "
            f"{' and '.join(CUSTOMER_TYPES)} tell the account of a customer (its metadata)."
        )
    )
    created: int = Field(description="Unix time of the event.")
    data: dict[str, object] = Field(description="`object`: the subscription, invoice, ...")


class StripeReceived(BaseModel):
    received: bool = True
    accepted: int
    duplicates: int
    rejected: int
    held: int = Field(
        0,
        description="Events of a customer with no account yet, kept aside until it has one "
        "(GET /v1/stripe/unmapped-customers).",
    )
    errors: list[ItemError] = Field(default_factory=list)


router = APIRouter()
BODIES: BodyModels = {PATH: {JSON: [StripeEventIn]}}


@router.post(
    PATH,
    response_model=StripeReceived,
    tags=["stripe"],
    summary="Stripe webhook endpoint",
    description=(
        "Point a Stripe webhook endpoint here. Authenticated by `Stripe-Signature` "
        "(no API key). 200 once the broker acknowledged; events that cannot be "
        "mapped are listed in `errors` and dead-lettered."
    ),
    responses={
        400: {"model": Problem, "description": "Bad signature, or not a Stripe event"},
        413: {"model": Problem, "description": "Body too large"},
        415: {"model": Problem, "description": "Not application/json"},
        503: {"model": Problem, "description": "Broker down or no secret configured"},
    },
)
async def stripe_webhook(request: Request, ingest: Context) -> StripeReceived | JSONResponse:
    received = await ingest.http.receive(
        request,
        channel=CHANNEL,
        media_types=(JSON,),
        parse=_parser(request.headers.get("stripe-signature"), ingest),
        sender_known_in_parse=True,
    )
    if isinstance(received, Refused):
        return refused_response(received)
    outcome = received.outcome
    return StripeReceived(
        accepted=len(outcome.accepted),
        duplicates=len(outcome.duplicates),
        rejected=len(outcome.rejected),
        held=len(outcome.held),
        errors=[item_error(i, r) for i, r in sorted(outcome.rejected.items())],
    )


@router.get(
    UNMAPPED_PATH,
    response_model=UnmappedCustomerList,
    tags=["stripe"],
    summary="Stripe customers with no account",
    description=(
        "Customers whose billing events came but whose account is not known (no "
        "`VITALS_INGEST_STRIPE_CUSTOMER_ACCOUNTS` entry, no account in their metadata): "
        "their events are kept aside, not scored, newest customer first. Once an event "
        "tells a customer's account (a `customer.*` event, metadata on an object, or any "
        "event of a customer added to the mapping), the kept events are published as "
        "that account's and the customer leaves this list."
    ),
    dependencies=[Depends(authenticate(Scope.read))],
    responses=READ_ERRORS,
)
async def unmapped_customers(ingest: Context) -> UnmappedCustomerList:
    return UnmappedCustomerList(customers=await ingest.customers.unmapped_customers())


def _parser(header: str | None, ingest: IngestContext) -> Parser:
    """Verify the signature, then map the event with the customer's known account."""
    settings, customers = ingest.settings, ingest.customers

    async def parse(body: bytes, received_at: datetime) -> Deferred:
        secrets = settings.stripe_secrets()
        _verify(body, header, secrets, settings.ingest_stripe_tolerance_s)
        event = read_stripe_event(body)
        known = None
        if needs_known_account(event):
            known = await customers.account(customer_of(event))
        accounts = settings.stripe_accounts()
        mapped = map_stripe(event, accounts, known, received_at, ingest.limits)
        if mapped.learned is not None:
            await customers.remember(mapped.learned)
        count = len(mapped.items) + (mapped.unmapped is not None)

        async def prepare(session: AsyncSession) -> Prepared:
            decided = await decide(session, mapped, received_at)
            items = [(item, ORIGIN) for item in [*decided.own, *decided.released]]
            return Prepared(items, decided.after_stored)

        return Deferred(count, False, prepare)

    return parse


def _verify(body: bytes, header: str | None, secrets: list[str], tolerance_s: float) -> None:
    if not secrets:
        message = "Stripe webhooks are not configured: set VITALS_INGEST_STRIPE_WEBHOOK_SECRETS"
        log.error("Stripe webhook refused: %s", message)
        headers = {"Retry-After": RETRY_AFTER_UNCONFIGURED_S}
        raise RequestRefused(Refused(503, "stripe_not_configured", message, headers=headers))
    try:
        verify_stripe_signature(body, header, secrets, tolerance_s)
    except InvalidSignature as exc:
        log.warning("Stripe webhook refused: %s", exc)
        raise RequestRefused(Refused(400, "invalid_signature", str(exc))) from None
