"""Serve an ASGI or WSGI app with uvicorn, hardened against slow and idle clients.

`python -m serving MODULE:ATTR [--interface asgi|wsgi] [--port 8000]`: every service image
runs through this (dockerfiles/apps.toml), so all of them read requests the same way.
"""
