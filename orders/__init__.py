"""Customers, orders, grants, fulfilment, delivery, redemption, refunds; subscriptions in a subpackage."""

from __future__ import annotations

from typing import Any

from flask import Flask

from saas import jobs


def on_card_keys_arrived(sender: Any, *, tenant_id: int, right_id: int, **_: Any) -> None:
    """When keys arrive for a right that has backorders, fill them in the background."""
    from orders.fulfilment import has_backorders
    from tenants.scoping import tenant_bound

    with tenant_bound(tenant_id):
        if not has_backorders(right_id):
            return
    jobs.enqueue(
        "orders.tasks.fill_backorders", tenant_id, right_id, queue="fulfilment", retries=3, timeout=600
    )


def init_app(app: Flask) -> None:
    """Register the back office, the customer pages, the API, the stock signal receiver and the demo step."""
    from catalog.signals import card_keys_arrived
    from orders import api, demo, my_rights, views
    from tenants.demo import DEMO_STEPS

    app.register_blueprint(views.bp)
    app.register_blueprint(my_rights.bp)
    app.register_blueprint(api.bp)
    card_keys_arrived.connect(on_card_keys_arrived)
    if demo.add_demo_orders not in DEMO_STEPS:
        DEMO_STEPS.append(demo.add_demo_orders)
    from orders import subscriptions

    subscriptions.init_app(app)
    from orders import portal

    portal.init_app(app)
    from orders import risk

    risk.init_app(app)
