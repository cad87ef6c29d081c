"""Tenancy law 5 over every route: another tenant's data is a 404, never a 403 and never data.

The routes are enumerated from the app, so a route added later is covered without anyone remembering.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from saas.extensions import db
from tenants import services
from tenants.models import AuditEvent
from tenants.roles import PERMISSIONS, Role
from tests.factories import Shop, login
from tests.routes import api_routes, build_url, object_values, tenant_routes


def audit_rows_of(shop: Shop) -> int:
    with shop.bound():
        return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_the_app_has_tenant_and_api_routes_to_check(app: Flask) -> None:
    assert len(tenant_routes(app)) >= 10
    assert len(api_routes(app)) >= 2


def test_every_tenant_route_declares_a_permission(app: Flask) -> None:
    for route in tenant_routes(app):
        view = app.view_functions[route.rule.endpoint]
        permission = getattr(view, "required_permission", None)
        assert permission in PERMISSIONS, f"{route} declares no permission (use @requires)"


def test_a_member_of_another_tenant_gets_404_on_every_tenant_route(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    login(client, other_shop.owner)
    before = audit_rows_of(shop)
    for route in tenant_routes(app):
        values = object_values(route, shop)
        into_their_tenant = build_url(app, route, shop.slug, values)
        response = client.open(into_their_tenant, method=route.method)
        assert response.status_code == 404, f"{route} in the other tenant's URL gave {response.status_code}"
        if values:
            their_objects_in_my_tenant = build_url(app, route, other_shop.slug, values)
            response = client.open(their_objects_in_my_tenant, method=route.method)
            assert response.status_code == 404, (
                f"{route} with the other tenant's ids gave {response.status_code}"
            )
    assert audit_rows_of(shop) == before, "a request from another tenant changed something"


def test_an_api_key_of_another_tenant_gets_404_on_every_object_route(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    with other_shop.bound():
        _key, secret = services.create_api_key(Role.OWNER, "all scopes", list(PERMISSIONS))
    headers = {"Authorization": f"Bearer {secret}"}
    for route in api_routes(app):
        values = object_values(route, shop)
        if not values:
            continue
        response = client.open(
            build_url(app, route, None, values), method=route.method, headers=headers, json={}
        )
        assert response.status_code == 404, f"{route} with the other tenant's ids gave {response.status_code}"
        assert response.is_json and response.json["code"] == "not_found", route  # type: ignore[index]


def test_a_signed_out_visitor_is_sent_to_log_in(app: Flask, client: FlaskClient, shop: Shop) -> None:
    for route in tenant_routes(app):
        response = client.open(
            build_url(app, route, shop.slug, object_values(route, shop)), method=route.method
        )
        assert response.status_code in (302, 401), f"{route} gave {response.status_code} to a visitor"
