"""App factory and the module-level `app` for `uvicorn backend.main:app`.

Nothing is loaded at import time: the lifespan loads the model once per process at start-up
and fails start-up with a clear message when MODEL_DIR holds no model.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import torch
from fastapi import FastAPI

from backend import __version__, errors
from backend.inference import Classifier
from backend.limits import BodySizeLimitMiddleware
from backend.routers import health, model, predict, samples
from backend.samples import SampleStore
from backend.settings import Settings

logger = logging.getLogger("backend")

# Room for the multipart boundary and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def _configure_logging(level: str) -> None:
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded by the lifespan, not here."""
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.LOG_LEVEL)
        torch.set_num_threads(settings.TORCH_THREADS)
        try:
            classifier = Classifier.load(settings.MODEL_DIR, threads=settings.TORCH_THREADS)
        except RuntimeError as exc:
            logger.error("start-up failed: %s", exc)
            raise
        app.state.classifier = classifier
        app.state.samples = SampleStore(settings.samples_dir, classifier.classes)
        app.state.decode_slots = anyio.CapacityLimiter(settings.DECODE_WORKERS)
        logger.info(
            "model %s loaded from %s (%d classes, %d samples in %s, torch threads %d)",
            classifier.version,
            settings.MODEL_DIR,
            len(classifier.classes),
            len(app.state.samples),
            settings.samples_dir,
            torch.get_num_threads(),
        )
        try:
            yield
        finally:
            app.state.classifier = None
            app.state.samples = None

    app = FastAPI(
        title="Grocery image classifier",
        version=__version__,
        description="Classifies photos of groceries with a small CNN.",
        lifespan=lifespan,
        form_limits={"max_files": 1, "max_fields": 8, "max_part_size": MULTIPART_OVERHEAD},
    )
    app.add_middleware(
        BodySizeLimitMiddleware, max_body_size=settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    )
    app.state.settings = settings
    app.state.classifier = None
    app.state.samples = None
    errors.install(app)
    for router in (health.router, predict.router, samples.router, model.router):
        app.include_router(router)
    return app


app = create_app()
