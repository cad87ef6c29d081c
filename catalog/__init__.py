"""Rights, bundles and plans, card-key inventory."""

from __future__ import annotations

from flask import Flask

from catalog import api, cli, demo, inventory, services, views
from saas.periodic import PeriodicJob, register_periodic_job
from tenants.checklist import register_checklist_item
from tenants.demo import register_demo_step


def init_app(app: Flask) -> None:
    """Register the catalog's views, API, CLI commands, periodic job, checklist items and demo data."""
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.cli.add_command(cli.inventory_group)
    app.cli.add_command(cli.keys_group)
    register_periodic_job(
        app, PeriodicJob("expire-card-keys", "catalog.tasks.expire_card_keys_everywhere", 3600)
    )
    register_checklist_item(app, "bundle", "catalog.bundles", lambda: services.bundle_count() > 0)
    register_checklist_item(app, "keys", "catalog.inventory", lambda: inventory.import_batch_count() > 0)
    register_demo_step(app, demo.create_demo_catalog)
