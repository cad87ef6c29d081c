"""Tenancy law 5 over every route of the customer portal (/shop/<slug>/my…): a customer of one shop gets
nothing of another shop's — a 404 for any object, the sign-in form for the portal itself.

The routes are enumerated from the app, so a portal route added later is covered without anyone remembering.
The customer signed in to the other shop has the same phone number as the shop's fixture customers' would
be: sessions are per shop, and phone numbers are not a key across shops.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from orders.delivery import my_rights_token
from orders.models import Customer
from saas.extensions import db
from tenants.models import AuditEvent
from tests.factories import Shop
from tests.routes import build_url, object_values, portal_routes


def audit_rows_of(shop: Shop) -> int:
    with shop.bound():
        return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def signed_in_to(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        customer = Customer(phone="+8613800000000", name="Other shop's customer")
        db.session.add(customer)
        db.session.commit()
        token = my_rights_token(shop.tenant.id, customer.id)
    assert client.get(f"/my/{token}").status_code == 302


def test_the_portal_has_routes_to_check(app: Flask) -> None:
    assert len([r for r in portal_routes(app) if r.object_variables]) >= 6


def test_a_customer_of_another_shop_gets_404_or_the_sign_in_form_on_every_portal_route(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    signed_in_to(client, other_shop)
    before = audit_rows_of(shop)
    for route in portal_routes(app):
        values = object_values(route, shop)
        response = client.open(build_url(app, route, shop.slug, values), method=route.method)
        if values:
            assert response.status_code == 404, f"{route} in the other shop gave {response.status_code}"
            response = client.open(build_url(app, route, other_shop.slug, values), method=route.method)
            assert response.status_code == 404, f"{route} with their ids gave {response.status_code}"
        elif route.method == "GET":
            page = response.get_data(as_text=True)
            assert response.status_code == 200 and 'data-testid="portal-sign-in"' in page, route
        else:
            assert response.status_code == 302, f"{route} gave {response.status_code}"
    assert audit_rows_of(shop) == before, "a request from another shop's customer changed something"


def test_a_signed_out_visitor_gets_404_on_every_object_route(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    for route in portal_routes(app):
        values = object_values(route, shop)
        if values:
            response = client.open(build_url(app, route, shop.slug, values), method=route.method)
            assert response.status_code == 404, f"{route} gave {response.status_code} to a visitor"


def test_an_unknown_shop_is_a_404(client: FlaskClient) -> None:
    assert client.get("/shop/no-such-shop/my").status_code == 404
