"""WSGI entry point for gunicorn, importable wherever the package is installed: `gunicorn quanyi.wsgi:app`."""

from __future__ import annotations

from quanyi.app import create_app

# Forwarded headers are trusted only behind TRUSTED_PROXY_COUNT proxies (saas.security.trust_proxies).
app = create_app()
