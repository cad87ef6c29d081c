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
    from tenants.demo import DEMO_STEPS

    if "reconciliation" not in app.blueprints:
        app.register_blueprint(views_bp)
        app.register_blueprint(api_bp)
        app.cli.add_command(reconciliation_group)
    if add_demo_reconciliation not in DEMO_STEPS:
        DEMO_STEPS.append(add_demo_reconciliation)
