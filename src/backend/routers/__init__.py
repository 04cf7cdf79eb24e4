"""One router per resource: health, predict, samples, model."""
