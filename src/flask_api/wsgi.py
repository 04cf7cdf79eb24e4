"""WSGI entry point: ``gunicorn flask_api.wsgi:app --bind 0.0.0.0:8080``."""

from flask_api import create_app

app = create_app()
