"""Subscriptions tests: the package's tables and pages are part of every app built here."""

from __future__ import annotations

import pytest
from flask import Flask

import orders.subscriptions.models  # noqa: F401  (the tables exist before the databases are created)


@pytest.fixture(autouse=True)
def _subscriptions_registered(app: Flask) -> None:
    """Register the subscriptions blueprints if the app factory does not yet (until orders wires them)."""
    if "subscriptions" not in app.blueprints:
        import orders.subscriptions

        orders.subscriptions.init_app(app)
