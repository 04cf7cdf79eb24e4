"""`GET /model`: the metadata of the loaded model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.deps import ClassifierDep

router = APIRouter(tags=["model"])


@router.get("/model")
async def model_metadata(classifier: ClassifierDep) -> dict[str, Any]:
    """`metadata.json` of the loaded model (classes, input size, metrics, ...)."""
    return classifier.metadata
