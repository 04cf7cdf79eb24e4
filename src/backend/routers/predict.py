"""`POST /predict`: classify one uploaded image."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile, status
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from backend.deps import ClassifierDep, SettingsDep
from backend.inference import Classifier, Prediction
from backend.schemas import ErrorOut, PredictionOut
from backend.settings import Settings
from grocery.imaging import ImageTooLarge, decode_image

MULTIPART = "multipart/form-data"


def _out_of_space(error: BaseException | None) -> bool:
    """Whether error was caused, at any depth, by a full file system (ENOSPC)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


class MultipartRoute(APIRoute):
    """A route that answers 415 to anything but a multipart form, before reading the body,
    and 503 (Retry-After) to an upload that finds no room to be received: Starlette spools
    an upload over 1 MiB to /tmp (a 64 MiB tmpfs where the services run hardened), and a
    burst of large uploads can fill it, which FastAPI would answer 400 as a bad body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def multipart_only(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if content_type.split(";", 1)[0].strip().lower() != MULTIPART:
                got = content_type or "no Content-Type"
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    f"send the image as {MULTIPART} with a 'file' field (got {got})",
                )
            receive, ended = request.receive, False

            async def tracked() -> Message:
                nonlocal ended
                message = await receive()
                ended = message["type"] != "http.request" or not message.get("more_body")
                return message

            request._receive = tracked  # the same Request goes on to FastAPI's handler
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI raises the body's 400 as Starlette's
                if exc.status_code == status.HTTP_400_BAD_REQUEST and _out_of_space(exc):
                    # Read the rest of the body, keeping nothing (bounded by the body limit
                    # and READ_TIMEOUT), so that the client, still sending, gets the answer
                    # and not a reset connection.
                    with contextlib.suppress(Exception):
                        while not ended:
                            await tracked()
                    raise HTTPException(
                        status.HTTP_503_SERVICE_UNAVAILABLE,
                        "busy: no room to receive the upload right now; retry shortly",
                        headers={"Retry-After": "1"},
                    ) from exc
                raise

        return multipart_only


router = APIRouter(tags=["predict"], route_class=MultipartRoute)


def _classify(data: bytes, classifier: Classifier, settings: Settings) -> Prediction:
    image = decode_image(
        data,
        max_bytes=settings.MAX_UPLOAD_BYTES,
        max_pixels=settings.MAX_IMAGE_PIXELS,
        max_jpeg_scans=settings.MAX_JPEG_SCANS,
        target=(classifier.input_size, classifier.input_size),
    )
    return classifier.predict(image)


async def classify_in_a_slot(request: Request, file: UploadFile, classifier: Classifier,
                             settings: Settings) -> Prediction:  # fmt: skip
    """Read, decode and classify in one of DECODE_WORKERS slots, off the event loop.

    The upload stays in its spooled temporary file until a slot is free: at most
    DECODE_WORKERS uploads per worker are in memory, raw or decoded. Waiting is bounded:
    after QUEUE_TIMEOUT seconds the answer is 503 with Retry-After, so a burst of expensive
    uploads neither queues without end nor exhausts memory.
    """
    slots: anyio.CapacityLimiter = request.app.state.decode_slots
    try:
        with anyio.fail_after(settings.QUEUE_TIMEOUT):
            await slots.acquire()
    except TimeoutError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"busy: all {slots.total_tokens:g} decoding slots stayed taken for "
            f"{settings.QUEUE_TIMEOUT:g} s; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    try:
        data = await file.read(settings.MAX_UPLOAD_BYTES + 1)
        return await anyio.to_thread.run_sync(_classify, data, classifier, settings)
    finally:
        slots.release()


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses={
        400: {"model": ErrorOut, "description": "Not an image, corrupt or truncated"},
        413: {"model": ErrorOut, "description": "Too many bytes, pixels or JPEG scans"},
        415: {"model": ErrorOut, "description": "Not multipart, or image format not allowed"},
        503: {"model": ErrorOut, "description": "Busy: retry after Retry-After seconds"},
    },
)
async def predict(
    request: Request,
    file: Annotated[UploadFile, File(description="A PNG or JPEG image")],
    classifier: ClassifierDep,
    settings: SettingsDep,
) -> PredictionOut:
    """Classify the uploaded image; returns the label, its confidence and all probabilities."""
    limit = settings.MAX_UPLOAD_BYTES
    if file.size is not None and file.size > limit:
        raise ImageTooLarge(f"image is {file.size} bytes; the limit is {limit} bytes")
    prediction = await classify_in_a_slot(request, file, classifier, settings)
    return PredictionOut(**prediction._asdict())
