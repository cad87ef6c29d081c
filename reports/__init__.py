"""Dashboards and report queries; reconciliation (对账) in a sub-package, as `orders/` keeps subscriptions."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the dashboards (pages, API, plotly asset, CLI, demo step) and reconciliation."""
    from reports import api, cli, dashboards, demo, models, reconciliation  # noqa: F401  (models: tables)
    from tenants.demo import DEMO_STEPS

    app.register_blueprint(dashboards.bp)
    app.register_blueprint(dashboards.assets)
    app.register_blueprint(api.bp)
    app.cli.add_command(cli.reports_group)
    if demo.rebuild_demo_rollups not in DEMO_STEPS:
        DEMO_STEPS.append(demo.rebuild_demo_rollups)
    reconciliation.init_app(app)
