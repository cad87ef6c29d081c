"""Subscriptions tests: the package's tables and pages are part of every app built here."""

from __future__ import annotations

import pytest
from flask import Flask

# Every package's tables must be in the metadata before the PostgreSQL schema is created for the session;
# the route factories import them all (run alone, this directory would otherwise miss later packages' tables).
import orders.subscriptions.models  # noqa: F401
import tests.url_objects  # noqa: F401


@pytest.fixture(autouse=True)
def _subscriptions_registered(app: Flask) -> None:
    """Register the subscriptions blueprints if the app factory does not yet (until orders wires them)."""
    if "subscriptions" not in app.blueprints:
        import orders.subscriptions

        orders.subscriptions.init_app(app)
