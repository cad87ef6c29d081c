"""WSGI entry point of a checkout (`gunicorn wsgi:app`); an install serves `saas.wsgi:app`, the same app."""

from saas.wsgi import app

__all__ = ["app"]
