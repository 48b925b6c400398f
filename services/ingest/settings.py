from __future__ import annotations

from pydantic import Field

from shared.settings import VitalsSettings


class IngestSettings(VitalsSettings):
    ingest_max_body_bytes: int = Field(
        512 * 1024, gt=0, description="Largest request body accepted, in bytes."
    )
    ingest_max_batch_events: int = Field(
        2500, gt=0, description="Most events accepted in one request."
    )
    ingest_publish_timeout_s: float = Field(
        10.0, gt=0, description="How long a request waits for the broker's acknowledgement."
    )
