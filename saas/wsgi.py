"""WSGI entry point for gunicorn, importable wherever the package is installed: `gunicorn saas.wsgi:app`."""

from __future__ import annotations

import os

from werkzeug.middleware.proxy_fix import ProxyFix

from saas.app import create_app

app = create_app()
# Behind one reverse proxy (the load balancer): trust its X-Forwarded-For/Proto so client IPs in the audit
# log and https URLs in mails are right. Set QUANYI_PROXIES=0 when serving directly.
_proxies = int(os.environ.get("QUANYI_PROXIES", "1"))
if _proxies:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=_proxies, x_proto=_proxies, x_host=_proxies)  # type: ignore[method-assign]
