"""Exception handlers: every error is JSON with a `detail` message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from grocery.imaging import ImageError

logger = logging.getLogger("backend")


async def image_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageError)
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ImageError, image_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
