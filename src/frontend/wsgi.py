"""WSGI entry point: `gunicorn frontend.wsgi:server --bind 0.0.0.0:8050`."""

from frontend.app import create_app

app = create_app()
server = app.server
