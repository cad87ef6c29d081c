"""Risk control (风控): purchase limits, blocklists, velocity rules, the review queue and anomaly flags."""

from __future__ import annotations

from flask import Flask

from orders.risk import views


def init_app(app: Flask) -> None:
    """Register the risk back office."""
    app.register_blueprint(views.bp)
