"""Liveness and readiness: the container HEALTHCHECK probes `GET /health`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> Health | JSONResponse:
    """`ok` once the model is loaded; 503 otherwise."""
    classifier = getattr(request.app.state, "classifier", None)
    if classifier is None:
        body = Health(status="unavailable", model_loaded=False, model_version=None)
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", model_loaded=True, model_version=classifier.version)
