"""Dashboards and report queries; reconciliation (对账) in a sub-package, as `orders/` keeps subscriptions."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the dashboards (pages, API, plotly asset, CLI, periodic job, demo step) and reconciliation."""
    from reports import api, cli, dashboards, demo, models, reconciliation  # noqa: F401  (models: tables)
    from saas.periodic import PeriodicJob, register_periodic_job
    from tenants.demo import register_demo_step

    app.register_blueprint(dashboards.bp)
    app.register_blueprint(dashboards.assets)
    app.register_blueprint(api.bp)
    app.cli.add_command(cli.reports_group)
    register_periodic_job(
        app,
        PeriodicJob(
            "refresh-dashboard-rollups", "reports.rollup_tasks.refresh_rollups_everywhere", 300, "reports"
        ),
    )
    register_demo_step(app, demo.rebuild_demo_rollups)
    reconciliation.init_app(app)
