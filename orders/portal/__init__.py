"""我的权益: one customer portal per shop, signed in by code or link, with family sharing (亲情共享)."""

from __future__ import annotations

from flask import Flask

from orders.portal import models, views  # noqa: F401  (the models join the metadata)


def init_app(app: Flask) -> None:
    """Register the portal's pages."""
    app.register_blueprint(views.bp)
