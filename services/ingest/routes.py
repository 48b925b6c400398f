"""What ingest's routes read besides the request: kept on ``app.state.ingest`` by
``create_app`` and given to each route by the ``Context`` dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.ingest.domain import Limits
from services.ingest.http_intake import HttpIntake
from services.ingest.segment_users import SegmentUsers
from services.ingest.settings import IngestSettings
from services.ingest.stripe_customers import StripeCustomers


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    limits: Limits
    http: HttpIntake
    users: SegmentUsers
    customers: StripeCustomers


def _context(request: Request) -> IngestContext:
    context: IngestContext = request.app.state.ingest
    return context


Context = Annotated[IngestContext, Depends(_context)]
