"""Sales channels, SKU mapping, webhook inbox, outbound webhooks, the tenant REST API."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this package's views, API and jobs (nothing yet)."""
