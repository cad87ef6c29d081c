"""The permission matrix is enforced on every back-office and API route, and the README shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tenants import services
from tenants.roles import PERMISSIONS, Role, has_permission, matrix_markdown
from tests.factories import Shop, login
from tests.routes import api_routes, build_url, object_values, tenant_routes

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    app: Flask, shop: Shop, role: str
) -> None:
    client = app.test_client()
    login(client, shop.members[role])
    for route in tenant_routes(app):
        permission = app.view_functions[route.rule.endpoint].required_permission  # type: ignore[attr-defined]
        url = build_url(app, route, shop.slug, object_values(route, shop))
        status = client.open(url, method=route.method).status_code
        if has_permission(role, permission):
            assert status != 403, f"{role} should be allowed {route} ({permission})"
        else:
            assert status == 403, f"{role} should be refused {route} ({permission}), got {status}"


def test_an_api_key_reaches_exactly_the_routes_its_scopes_allow(app: Flask, shop: Shop) -> None:
    client = app.test_client()
    with shop.bound():
        _, no_scopes = services.create_api_key(Role.OWNER, "none", [])
        _, all_scopes = services.create_api_key(Role.OWNER, "all", list(PERMISSIONS))
    for route in api_routes(app):
        scope = app.view_functions[route.rule.endpoint].required_permission  # type: ignore[attr-defined]
        url = build_url(app, route, None, object_values(route, shop))
        bare = client.open(
            url, method=route.method, headers={"Authorization": f"Bearer {no_scopes}"}, json={}
        )
        full = client.open(
            url, method=route.method, headers={"Authorization": f"Bearer {all_scopes}"}, json={}
        )
        assert full.status_code != 403, f"{route} refused a key with every scope"
        if scope is not None:
            assert bare.status_code == 403 and bare.json["code"] == "forbidden", route  # type: ignore[index]


def test_a_key_cannot_be_given_scopes_its_creator_lacks(shop: Shop) -> None:
    with shop.bound(), pytest.raises(services.TenantError):
        services.create_api_key(Role.ADMIN, "sneaky", ["reports.export", "team.manage", "orders.refund", "x"])
    with shop.bound(), pytest.raises(services.TenantError):
        services.create_api_key(Role.ANALYST, "sneaky", ["orders.refund"])


def test_the_readme_shows_the_permission_matrix_from_the_code() -> None:
    assert matrix_markdown() in README.read_text(encoding="utf-8"), (
        "README's permission table differs from tenants/roles.py: paste matrix_markdown() into it"
    )


def test_only_an_owner_hands_out_ownership() -> None:
    from tenants.roles import roles_assignable_by

    assert Role.OWNER in roles_assignable_by("owner")
    assert Role.OWNER not in roles_assignable_by("admin")
    assert roles_assignable_by("operator") == []
