"""Subscriptions: the life of a renewable order — periods, renewals, reminders, cancellation, self-service."""

from __future__ import annotations

from flask import Flask

from orders.subscriptions import api, customer, demo, views
from saas.periodic import PeriodicJob, register_periodic_job
from tenants.demo import register_demo_step


def init_app(app: Flask) -> None:
    """Register the back office, the customer's page, the API, the periodic jobs and the demo step."""
    if "subscriptions" not in app.blueprints:
        app.register_blueprint(views.bp)
        app.register_blueprint(customer.bp)
        app.register_blueprint(api.bp)
    register_periodic_job(
        app,
        PeriodicJob("subscription-reminders", "orders.subscriptions.tasks.send_reminders_everywhere", 900),
    )
    register_periodic_job(
        app,
        PeriodicJob(
            "subscription-lifecycle", "orders.subscriptions.tasks.expire_subscriptions_everywhere", 900
        ),
    )
    register_demo_step(app, demo.add_demo_subscriptions)
