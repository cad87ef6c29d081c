"""WSGI entry point of a checkout (`gunicorn wsgi:app`); an install serves `quanyi.wsgi:app`, the same app."""

from quanyi.wsgi import app

__all__ = ["app"]
