"""Walk the app's URL rules and build concrete URLs for them (used by the route-wide tests)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from werkzeug.routing import Rule

from tests.factories import Shop
from tests.url_objects import URL_OBJECTS

CHECKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    rule: Rule
    method: str

    @property
    def object_variables(self) -> list[str]:
        return sorted(set(self.rule.arguments) - {"tenant_slug", "shop_slug"})

    def __str__(self) -> str:
        return f"{self.method} {self.rule.rule}"


def tenant_routes(app: Flask) -> list[Route]:
    """Every back-office route under /t/<tenant_slug>/, one per method."""
    return [
        Route(rule, method)
        for rule in app.url_map.iter_rules()
        if "tenant_slug" in rule.arguments
        for method in sorted(rule.methods or ())
        if method in CHECKED_METHODS
    ]


def portal_routes(app: Flask) -> list[Route]:
    """Every route of a shop's customer portal (/shop/<shop_slug>/my…), one per method."""
    return [
        Route(rule, method)
        for rule in app.url_map.iter_rules()
        if "shop_slug" in rule.arguments
        for method in sorted(rule.methods or ())
        if method in CHECKED_METHODS
    ]


def api_routes(app: Flask) -> list[Route]:
    """Every authenticated API route."""
    return [
        Route(rule, method)
        for rule in app.url_map.iter_rules()
        if hasattr(app.view_functions.get(rule.endpoint), "api_operation")
        for method in sorted(rule.methods or ())
        if method in CHECKED_METHODS
    ]


def object_values(route: Route, owner: Shop) -> dict[str, int | str]:
    """Create, in `owner`, an object for each variable of the route and return their ids."""
    values: dict[str, int | str] = {}
    for variable in route.object_variables:
        assert variable in URL_OBJECTS, (
            f"{route}: add a factory for <{variable}> to tests/url_objects.py so route tests cover it"
        )
        with owner.bound():
            values[variable] = URL_OBJECTS[variable](owner)
    return values


def build_url(app: Flask, route: Route, slug: str | None, values: dict[str, int | str]) -> str:
    """Build the path of `route` for the tenant `slug` with the given object ids."""
    arguments = dict(values)
    if slug is not None:
        arguments["shop_slug" if "shop_slug" in route.rule.arguments else "tenant_slug"] = slug
    adapter = app.url_map.bind("quanyi.test")
    return adapter.build(route.rule.endpoint, arguments, method=route.method, force_external=False)
