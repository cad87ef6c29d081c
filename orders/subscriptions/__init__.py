"""Subscriptions: the life of a renewable order — periods, renewals, reminders, cancellation, self-service."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the back office, the customer's page, the API and the demo step of subscriptions."""
    from orders.subscriptions import api, customer, demo, views
    from tenants.demo import DEMO_STEPS

    if "subscriptions" not in app.blueprints:
        app.register_blueprint(views.bp)
        app.register_blueprint(customer.bp)
        app.register_blueprint(api.bp)
    if demo.add_demo_subscriptions not in DEMO_STEPS:
        DEMO_STEPS.append(demo.add_demo_subscriptions)
