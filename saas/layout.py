"""The base layout: navigation, template filters (money, tenant time), static assets served locally."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Flask, current_app, g
from flask_babel import lazy_gettext as _l

from saas import labels
from saas.money import format_money
from saas.timeutil import format_in_zone


class NavItem(NamedTuple):
    """One entry of the back-office navigation, shown when its endpoint exists and the role may open it."""

    label: Any
    endpoint: str


NAVIGATION: tuple[NavItem, ...] = (
    NavItem(_l("Home"), "tenant.dashboard"),
    NavItem(_l("Catalog"), "catalog.bundles"),
    NavItem(_l("Inventory"), "catalog.inventory"),
    NavItem(_l("Orders"), "orders.orders"),
    NavItem(_l("Risk review"), "risk.review_queue"),
    NavItem(_l("Subscriptions"), "subscriptions.subscriptions"),
    NavItem(_l("Campaigns"), "campaigns.campaigns"),
    NavItem(_l("Channels"), "integrations.channels"),
    NavItem(_l("Dashboards"), "reports.dashboards"),
    NavItem(_l("Reconciliation"), "reconciliation.runs"),
    NavItem(_l("Team"), "tenant.team"),
    NavItem(_l("Audit log"), "tenant.audit_log"),
    NavItem(_l("API keys"), "tenant.api_keys"),
    NavItem(_l("Settings"), "tenant.settings"),
)


def visible_navigation(can: Callable[[str], bool]) -> list[NavItem]:
    """Return the navigation entries the current member may open (`can` answers for a permission)."""
    items = []
    for item in NAVIGATION:
        view = current_app.view_functions.get(item.endpoint)
        if view is None:
            continue
        permission = getattr(view, "required_permission", None)
        if permission is None or can(permission):
            items.append(item)
    return items


def tenant_time(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a UTC datetime in the current tenant's time zone."""
    tenant = g.get("tenant")
    return format_in_zone(moment, tenant.time_zone if tenant else "UTC", fmt)


def init_app(app: Flask) -> None:
    """Register the layout helpers with Jinja."""
    app.jinja_env.filters["money"] = format_money  # (minor units, currency) -> "¥123.45"
    app.jinja_env.filters["tenant_time"] = tenant_time
    app.jinja_env.globals["visible_navigation"] = visible_navigation
    labels.init_app(app)
