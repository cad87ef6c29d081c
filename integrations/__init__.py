"""Sales channels, SKU mapping, webhook inbox, outbound webhooks, the tenant REST API."""

from __future__ import annotations

from flask import Flask

from integrations import api, channels, demo, receivers, views
from integrations.inbound import webhooks
from saas.periodic import PeriodicJob, register_periodic_job
from tenants.checklist import register_checklist_item
from tenants.demo import register_demo_step


def init_app(app: Flask) -> None:
    """Register the back office, the webhook route, the API, the signal receivers, periodic job, demo step."""
    app.register_blueprint(views.bp)
    webhooks.init_app(app)
    app.register_blueprint(api.bp)
    receivers.connect_signals()
    register_periodic_job(
        app,
        PeriodicJob(
            "webhook-inbox-and-outbound-retries", "integrations.tasks.process_pending_inbox_everywhere", 60
        ),
    )
    register_checklist_item(app, "channel", "integrations.channels", lambda: channels.channel_count() > 0)
    register_demo_step(app, demo.create_demo_channels)
