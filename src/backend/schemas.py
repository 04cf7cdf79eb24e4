"""Response bodies of the API (they also document it in Swagger)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    model_loaded: bool
    model_version: str | None = Field(description="Prefix of the weights' SHA-256")


class PredictionOut(BaseModel):
    label: str = Field(examples=["banana"])
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: dict[str, float] = Field(description="Probability of every class; sums to 1")


class SampleOut(BaseModel):
    name: str = Field(examples=["banana/0001.png"])
    true_label: str
    media_type: str = Field(examples=["image/png"])
    image_base64: str


class ErrorOut(BaseModel):
    detail: str
