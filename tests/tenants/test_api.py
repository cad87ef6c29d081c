"""The REST API skeleton: bearer keys, scopes, JSON errors, cursor pagination, the OpenAPI document."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from saas.extensions import db
from tenants import audit, services
from tenants.models import ApiKey
from tenants.roles import Role
from tests.factories import Shop, login


def key_for(shop: Shop, scopes: list[str]) -> dict[str, str]:
    with shop.bound():
        _, secret = services.create_api_key(Role.OWNER, "test", scopes)
    return {"Authorization": f"Bearer {secret}"}


def test_a_request_without_a_key_gets_a_json_401(client: FlaskClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json["code"] == "unauthorized" and response.json["message"]  # type: ignore[index]


def test_a_key_names_its_tenant_and_scopes(client: FlaskClient, shop: Shop) -> None:
    response = client.get("/api/v1/me", headers=key_for(shop, ["audit.view"]))
    assert response.status_code == 200
    assert response.json["tenant"]["slug"] == shop.slug  # type: ignore[index]
    assert response.json["scopes"] == ["audit.view"]  # type: ignore[index]


def test_a_revoked_key_stops_working_and_use_is_recorded(client: FlaskClient, shop: Shop) -> None:
    headers = key_for(shop, [])
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with shop.bound():
        key = db.session.query(ApiKey).one()
        assert key.last_used_at is not None
        services.revoke_api_key(key)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_the_secret_is_shown_once_and_stored_hashed(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    page = client.post(f"/t/{shop.slug}/api-keys", data={"name": "erp", "scopes": ["orders.view"]})
    secret = page.get_data(as_text=True).split('class="secret">')[1].split("<")[0]
    with shop.bound():
        key = db.session.query(ApiKey).one()
    assert secret.startswith("qy_") and secret not in key.secret_hash
    assert secret not in client.get(f"/t/{shop.slug}/api-keys").get_data(as_text=True)


def test_lists_page_with_a_cursor_until_the_end(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        for n in range(7):
            audit.record("test.event", "thing", n)
        db.session.commit()
    headers = key_for(shop, ["audit.view"])
    seen: list[str] = []
    url = "/api/v1/audit-events?action=test.&limit=3"
    while True:
        body = client.get(url, headers=headers).json
        seen += [item["object_id"] for item in body["items"]]  # type: ignore[index]
        if body["next_cursor"] is None:  # type: ignore[index]
            break
        url = f"/api/v1/audit-events?action=test.&limit=3&cursor={body['next_cursor']}"  # type: ignore[index]
    assert sorted(seen) == [str(n) for n in range(7)] and len(seen) == 7


def test_bad_paging_parameters_get_a_clear_error(client: FlaskClient, shop: Shop) -> None:
    headers = key_for(shop, ["audit.view"])
    assert client.get("/api/v1/audit-events?limit=0", headers=headers).json["code"] == "invalid_limit"  # type: ignore[index]
    assert client.get("/api/v1/audit-events?cursor=%%%", headers=headers).json["code"] == "invalid_cursor"  # type: ignore[index]


def test_another_tenants_events_never_appear(client: FlaskClient, shop: Shop, other_shop: Shop) -> None:
    with other_shop.bound():
        audit.record("secret.thing")
        db.session.commit()
    body = client.get("/api/v1/audit-events", headers=key_for(shop, ["audit.view"])).json
    assert all(item["action"] != "secret.thing" for item in body["items"])  # type: ignore[index]


def test_the_openapi_document_describes_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")  # type: ignore[index]
    assert "/api/v1/me" in document["paths"]  # type: ignore[index]
    from tests.routes import api_routes

    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}  # type: ignore[index]
    for route in api_routes(app):
        path = route.rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        assert (path, route.method) in documented, f"{route} is missing from openapi.json"


def test_unknown_api_paths_answer_in_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json["code"] == "not_found"  # type: ignore[index]
