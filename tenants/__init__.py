"""Tenants, memberships and roles, invitations, API keys, tenant scoping, the audit log, job runs."""

from __future__ import annotations

from flask import Flask

from saas.periodic import PeriodicJob, register_periodic_job
from tenants import api_v1, cli, context, views
from tenants import outbox as _outbox  # noqa: F401  (registers the tenant outbox kind with saas.outbox)


def init_app(app: Flask) -> None:
    """Install tenant resolution, register the tenant views and API, and the outbox and job-run sweeps."""
    context.init_app(app)
    cli.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.tenant_bp)
    app.register_blueprint(api_v1.bp)
    app.register_blueprint(api_v1.docs_bp)
    register_periodic_job(app, PeriodicJob("outbox-sweep", "tenants.outbox.sweep_everywhere", 60, "mail"))
    register_periodic_job(app, PeriodicJob("job-run-leases", "tenants.jobruns.reap_dead_runs_everywhere", 60))
