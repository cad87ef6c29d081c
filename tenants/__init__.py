"""Tenants, memberships and roles, invitations, API keys, tenant scoping, the audit log, job runs."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Install tenant resolution and register the tenant views and API."""
    import tenants.outbox  # noqa: F401  (registers the tenant outbox model with saas.outbox)
    from tenants import api_v1, cli, context, views

    context.init_app(app)
    cli.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.tenant_bp)
    app.register_blueprint(api_v1.bp)
    app.register_blueprint(api_v1.docs_bp)
