"""Dependencies shared by the routers: the objects the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from backend.inference import Classifier
from backend.samples import SampleStore
from backend.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_classifier(request: Request) -> Classifier:
    classifier = getattr(request.app.state, "classifier", None)
    if classifier is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded")
    return classifier


async def get_samples(request: Request) -> SampleStore | None:
    return getattr(request.app.state, "samples", None)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClassifierDep = Annotated[Classifier, Depends(get_classifier)]
SamplesDep = Annotated[SampleStore | None, Depends(get_samples)]
