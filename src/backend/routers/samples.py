"""`GET /samples/random`: a test image with its true label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from backend.deps import ClassifierDep, SamplesDep, SettingsDep
from backend.schemas import ErrorOut, SampleOut

router = APIRouter(tags=["samples"])


@router.get(
    "/samples/random",
    response_model=SampleOut,
    responses={404: {"model": ErrorOut, "description": "No samples, or unknown label"}},
)
def random_sample(
    classifier: ClassifierDep,
    samples: SamplesDep,
    settings: SettingsDep,
    label: Annotated[str | None, Query(description="Only samples of this class")] = None,
) -> SampleOut:
    """A random sample image (PNG, base64) and its true label."""
    if label is not None and label not in classifier.classes:
        valid = ", ".join(classifier.classes)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown label {label!r}; valid labels: {valid}"
        )
    sample = samples.random(label) if samples is not None else None
    if sample is None:
        where = f"SAMPLES_DIR={settings.samples_dir}"
        what = f"of {label!r} " if label is not None else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sample images {what}in {where}")
    try:
        image_base64 = sample.base64()
    except OSError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"sample {sample.name} cannot be read"
        ) from exc
    return SampleOut(
        name=sample.name,
        true_label=sample.true_label,
        media_type="image/png",
        image_base64=image_base64,
    )
