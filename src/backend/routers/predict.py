"""`POST /predict`: classify one uploaded image."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile, status
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from backend.deps import ClassifierDep, SettingsDep
from backend.inference import Classifier, Prediction
from backend.schemas import ErrorOut, PredictionOut
from backend.settings import Settings
from grocery.imaging import ImageTooLarge, decode_image

MULTIPART = "multipart/form-data"

# Small uploads are classified right on the event loop: decoding and the forward pass take
# ~1 ms, less than a hop to the thread pool costs, and each worker process then uses one
# core without GIL contention (measured faster with 2 workers). Larger uploads may take
# long to decode, so they go to the thread pool and do not stall other requests.
INLINE_MAX_BYTES = 256 * 1024


class MultipartRoute(APIRoute):
    """A route that answers 415 to anything but a multipart form, before parsing the body."""

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
            return await handler(request)

        return multipart_only


router = APIRouter(tags=["predict"], route_class=MultipartRoute)


def _classify(data: bytes, classifier: Classifier, settings: Settings) -> Prediction:
    image = decode_image(
        data, max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS
    )
    return classifier.predict(image)


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses={
        400: {"model": ErrorOut, "description": "Not an image, corrupt or truncated"},
        413: {"model": ErrorOut, "description": "Too many bytes or pixels"},
        415: {"model": ErrorOut, "description": "Not multipart, or image format not allowed"},
    },
)
async def predict(
    file: Annotated[UploadFile, File(description="A PNG or JPEG image")],
    classifier: ClassifierDep,
    settings: SettingsDep,
) -> PredictionOut:
    """Classify the uploaded image; returns the label, its confidence and all probabilities."""
    limit = settings.MAX_UPLOAD_BYTES
    if file.size is not None and file.size > limit:
        raise ImageTooLarge(f"image is {file.size} bytes; the limit is {limit} bytes")
    data = await file.read(limit + 1)
    if len(data) <= INLINE_MAX_BYTES:
        prediction = _classify(data, classifier, settings)
    else:
        prediction = await run_in_threadpool(_classify, data, classifier, settings)
    return PredictionOut(**prediction._asdict())
