"""Customers, orders, grants, fulfilment, delivery, redemption, refunds; subscriptions in a subpackage."""

from __future__ import annotations

from typing import Any

from flask import Flask

from catalog.inventory import CARD_KEYS_ARRIVED
from orders import api, demo, my_rights, portal, risk, subscriptions, views
from orders.fulfilment import has_backorders
from saas import events, jobs
from saas.periodic import PeriodicJob, register_periodic_job
from tenants.demo import register_demo_step
from tenants.scoping import tenant_bound


def on_card_keys_arrived(sender: Any, *, tenant_id: int, payload: dict[str, Any], **_: Any) -> None:
    """When keys arrive for a right that has backorders, fill them in the background."""
    right_id = int(payload["right_id"])
    with tenant_bound(tenant_id):
        if not has_backorders(right_id):
            return
    jobs.enqueue(
        "orders.tasks.fill_backorders", tenant_id, right_id, queue="fulfilment", retries=3, timeout=600
    )


def init_app(app: Flask) -> None:
    """Register the back office, customer pages, API, stock signal receiver, periodic job and demo step."""
    app.register_blueprint(views.bp)
    app.register_blueprint(my_rights.bp)
    app.register_blueprint(api.bp)
    events.subscribe(CARD_KEYS_ARRIVED, on_card_keys_arrived)
    register_periodic_job(
        app,
        PeriodicJob(
            "release-expired-reservations", "orders.tasks.release_expired_reservations_everywhere", 60
        ),
    )
    register_demo_step(app, demo.add_demo_orders)
    subscriptions.init_app(app)
    portal.init_app(app)
    risk.init_app(app)
