"""Reconciliation (对账): monthly or ranged runs with CSV/XLSX/PDF exports, settlement matching, differences.

A sub-package of `reports`, laid out like `orders/subscriptions/`: `services` (runs and their totals),
`settlement` (a platform's bill matched against the orders), `exports` (the files), `models`, `forms`,
`views`, `api`, `cli`, `tasks`, `demo`. `reports.init_app` calls `init_app` here; everything reconciliation
registers lives in this one place.
"""

from __future__ import annotations

from flask import Flask

from reports.reconciliation import api, cli, demo, views
from saas.periodic import PeriodicJob, register_periodic_job
from tenants.demo import register_demo_step


def init_app(app: Flask) -> None:
    """Register the reconciliation pages, its API, its CLI group, its periodic job and its demo step."""
    if "reconciliation" not in app.blueprints:
        app.register_blueprint(views.bp)
        app.register_blueprint(api.bp)
        app.cli.add_command(cli.reconciliation_group)
    register_periodic_job(
        app,
        PeriodicJob(
            "monthly-reconciliation",
            "reports.reconciliation.tasks.schedule_monthly_reconciliation_everywhere",
            3600,
            "reports",
        ),
    )
    register_demo_step(app, demo.add_demo_reconciliation)
