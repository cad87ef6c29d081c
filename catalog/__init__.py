"""Rights, bundles and plans, card-key inventory."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the catalog's views, API, CLI commands, checklist items and demo data."""
    from catalog import api, cli, demo, inventory, services, views
    from tenants.checklist import register_checklist_item
    from tenants.demo import DEMO_STEPS

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.cli.add_command(cli.inventory_group)
    app.cli.add_command(cli.keys_group)
    register_checklist_item("bundle", "catalog.bundles", lambda: services.bundle_count() > 0)
    register_checklist_item("keys", "catalog.inventory", lambda: inventory.import_batch_count() > 0)
    if demo.create_demo_catalog not in DEMO_STEPS:
        DEMO_STEPS.append(demo.create_demo_catalog)
