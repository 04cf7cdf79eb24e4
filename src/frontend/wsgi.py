"""WSGI entry point: `python -m serving frontend.wsgi:server --interface wsgi`."""

from frontend.app import create_app

app = create_app()
server = app.server
