"""What ingest's routes read besides the request: kept on ``app.state.ingest`` by
``create_app`` and given to each route by the ``Context`` dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from services.ingest.domain import Limits
from services.ingest.http_intake import HttpIntake
from services.ingest.settings import IngestSettings
from services.ingest.sources.segment.store import SegmentDatabase
from services.ingest.sources.stripe.customers import StripeCustomers
from shared.http import app_state


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    limits: Limits
    http: HttpIntake
    segment: SegmentDatabase
    customers: StripeCustomers


Context = Annotated[IngestContext, app_state("ingest")]
