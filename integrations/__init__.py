"""Sales channels, SKU mapping, webhook inbox, outbound webhooks, the tenant REST API."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the back office, the public webhook route, the API, the outbound signals and the demo step."""
    from integrations import api, channels, demo, receivers, views
    from integrations.inbound import webhooks
    from tenants.checklist import register_checklist_item
    from tenants.demo import DEMO_STEPS

    app.register_blueprint(views.bp)
    webhooks.init_app(app)
    app.register_blueprint(api.bp)
    receivers.connect_signals()
    register_checklist_item("channel", "integrations.channels", lambda: channels.channel_count() > 0)
    if demo.create_demo_channels not in DEMO_STEPS:
        DEMO_STEPS.append(demo.create_demo_channels)
