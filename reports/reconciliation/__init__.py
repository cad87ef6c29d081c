"""Reconciliation (对账): monthly or ranged runs with CSV/XLSX/PDF exports, settlement matching, differences.

A sub-package of `reports`, laid out like `orders/subscriptions/`: `services` (runs and their totals),
`settlement` (a platform's bill matched against the orders), `exports` (the files), `models`, `forms`,
`views`, `api`, `cli`, `tasks`, `demo`. `reports.init_app` calls `init_app` here.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the reconciliation pages, its API, its CLI group and its demo step."""
    from reports.reconciliation import api, cli, demo, views
    from tenants.demo import DEMO_STEPS

    if "reconciliation" not in app.blueprints:
        app.register_blueprint(views.bp)
        app.register_blueprint(api.bp)
        app.cli.add_command(cli.reconciliation_group)
    if demo.add_demo_reconciliation not in DEMO_STEPS:
        DEMO_STEPS.append(demo.add_demo_reconciliation)
