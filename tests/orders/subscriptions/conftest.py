"""Subscriptions tests: the package's tables and pages are part of every app built here."""

from __future__ import annotations

import pytest
from flask import Flask

import orders.subscriptions.models  # noqa: F401
from quanyi.app import create_app

# Every package's tables must be in the metadata before the PostgreSQL schema is created for the session;
# packages import their models in init_app, so build an app once (run alone, this directory would otherwise
# miss the tables of packages no test here imports).
create_app({"ENV_NAME": "testing", "DATABASE_URL": "sqlite://"})


@pytest.fixture(autouse=True)
def _subscriptions_registered(app: Flask) -> None:
    """Register the subscriptions blueprints if the app factory does not yet (until orders wires them)."""
    if "subscriptions" not in app.blueprints:
        import orders.subscriptions

        orders.subscriptions.init_app(app)
