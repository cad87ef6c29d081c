"""Customers, orders, grants, fulfilment, delivery, redemption, refunds, subscriptions."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this package's views, API and jobs (nothing yet)."""
