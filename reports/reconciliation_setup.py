"""Wire reconciliation (对账) into the app: back-office pages, API, CLI and the demo step.

`reports/__init__.py` calls `init_app` here; everything reconciliation registers lives in this one place.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the reconciliation blueprint, its API, its CLI group and its demo step."""
    from reports.reconciliation_api import bp as api_bp
    from reports.reconciliation_cli import reconciliation_group
    from reports.reconciliation_demo import add_demo_reconciliation
    from reports.reconciliation_views import bp as views_bp
    from saas.periodic import PeriodicJob, register_periodic_job
    from tenants.demo import register_demo_step

    if "reconciliation" not in app.blueprints:
        app.register_blueprint(views_bp)
        app.register_blueprint(api_bp)
        app.cli.add_command(reconciliation_group)
    register_periodic_job(
        app,
        PeriodicJob(
            "monthly-reconciliation",
            "reports.reconciliation_tasks.schedule_monthly_reconciliation_everywhere",
            3600,
            "reports",
        ),
    )
    register_demo_step(app, add_demo_reconciliation)
