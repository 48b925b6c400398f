"""Delivers outbox rows to their channel, retrying with backoff, never twice at once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several replicas can run a
dispatcher on one database without sending the same delivery twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy.exc import SQLAlchemyError

from services.alerts import domain, metrics, repository
from services.alerts.models import Delivery
from services.alerts.settings import AlertsSettings
from shared.db import SessionFactory

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CLAIM_BATCH = 20
USER_AGENT = "Vitals-Alerts/0.1"


class DeliveryFailed(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Dispatcher:
    def __init__(
        self,
        settings: AlertsSettings,
        sessions: SessionFactory,
        clock: Clock,
        wake: asyncio.Event,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock
        self._wake = wake
        self._http = httpx.AsyncClient(
            timeout=settings.alerts_delivery_timeout_s,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    async def run(self) -> None:
        while True:
            try:
                busy = await self.dispatch_due()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("dispatcher cannot reach the database: %s", exc)
                busy = False
            if not busy:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.alerts_dispatch_interval_s
                    )

    async def close(self) -> None:
        await self._http.aclose()

    async def dispatch_due(self) -> bool:
        """Send one batch of due deliveries; ``True`` when there may be more."""
        async with self._sessions() as session, session.begin():
            due = await repository.due_deliveries(session, self._clock(), CLAIM_BATCH)
            for delivery in due:
                await self._attempt(delivery)
        return len(due) == CLAIM_BATCH

    async def _attempt(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        delivery.attempts += 1
        try:
            await self._post(delivery)
        except DeliveryFailed as exc:
            delay = domain.retry_delay(
                delivery.attempts, self._settings.alerts_delivery_max_attempts, exc.retry_after_s
            )
            delivery.last_error = str(exc)
            if delay is None:
                delivery.status = "dead"
                outcome = "dead"
                log.error(
                    "delivery %s is dead after %d attempts: %s", delivery.id, delivery.attempts, exc
                )
            else:
                delivery.next_attempt_at = self._clock() + delay
                outcome = "retry"
        else:
            delivery.status = "delivered"
            delivery.delivered_at = self._clock()
            outcome = "delivered"
        metrics.DELIVERIES.labels(delivery.channel, outcome).inc()
        metrics.DELIVERY_SECONDS.labels(delivery.channel).observe(time.perf_counter() - started)

    async def _post(self, delivery: Delivery) -> None:
        url = self._settings.alerts_webhook_url
        if url is None:
            raise DeliveryFailed("no webhook URL configured (VITALS_ALERTS_WEBHOOK_URL)")
        try:
            response = await self._http.post(
                str(url), json=delivery.payload, headers={"webhook-id": delivery.id}
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        raise DeliveryFailed(
            f"HTTP {response.status_code} from the receiver",
            _retry_after(response.headers.get("retry-after")),
        )


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
