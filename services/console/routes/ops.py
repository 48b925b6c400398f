"""What operators read: alive, ready (both APIs answer), and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.console.context import Context
from shared.metrics import exposition

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(console: Context) -> JSONResponse:
    """Ready when the scoring and alerts APIs answer: every page needs them."""
    checks = {api.name: await api.alive() for api in (console.scoring, console.alerts)}
    ready = all(problem == "ok" for problem in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
