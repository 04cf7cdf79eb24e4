"""Dash frontend: shows the backend's predictions for sample or uploaded images."""
