"""FastAPI service that classifies grocery images with the trained CNN."""

__version__ = "0.1.0"
