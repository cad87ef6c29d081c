"""The application factory: the one place that knows every package."""

from __future__ import annotations

from typing import Any

from flask import Flask

import campaigns
import catalog
import integrations
import orders
import reports
import tenants
from saas import security
from saas.app import create_shell_app

# Inner packages first: each `init_app` may use what the packages to its right registered.
DOMAIN_PACKAGES = (tenants, catalog, orders, campaigns, integrations, reports)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create the Quanyi app. Mode from `QUANYI_ENV` (development, testing, production)."""
    app = create_shell_app(config)
    for package in DOMAIN_PACKAGES:
        package.init_app(app)
    security.trust_proxies(app)  # last: the outermost middleware
    return app
