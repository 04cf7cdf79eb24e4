"""WSGI entry point: ``python -m serving flask_api.wsgi:app --interface wsgi``."""

from flask_api import create_app

app = create_app()
