"""Ids and amounts past 2^63 and deeply nested JSON are the sender's error: 4xx with the JSON error shape.

The tests walk the app's routes (see tests/routes.py), so a new route with an id, a cursor or a body is
covered without anyone remembering to add it. They run on SQLite and, with TEST_DATABASE_URL, PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from integrations.models import Channel
from saas.extensions import db
from tenants import services
from tenants.roles import PERMISSIONS, Role, has_permission
from tests.factories import Shop, login
from tests.integrations import factories as f
from tests.orders.factories import make_product, place_order
from tests.routes import Route, api_routes, build_url, object_values, tenant_routes
from tests.saas.test_rate_limits import my_rights_link

TOO_BIG = [2**63, 10**40]
DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
NESTED_PAST_THE_LIMIT = json.dumps({"reason": json.loads("[" * 70 + "]" * 70)}).encode()
_VARIABLE = re.compile(r"<(?:(int):)?([a-z_]+)>")


def app_for_routes() -> Flask:
    from quanyi.app import create_app

    return create_app({"ENV_NAME": "testing", "DATABASE_URL": "sqlite://"})


ROUTES = app_for_routes()
ID_ROUTES = [r for r in api_routes(ROUTES) if "<int:" in r.rule.rule]
PAGED_ROUTES = [
    r for r in api_routes(ROUTES) if ROUTES.view_functions[r.rule.endpoint].api_operation.paginated
]
BODY_ROUTES = [
    r for r in api_routes(ROUTES) if ROUTES.view_functions[r.rule.endpoint].api_operation.request_model
]
PAGE_ID_ROUTES = [r for r in tenant_routes(ROUTES) if "<int:" in r.rule.rule]


def path_of(route: Route, number: int, slug: str | None = None) -> str:
    """The route's path with every integer variable set to `number` (other variables: a harmless word)."""

    def value(match: re.Match[str]) -> str:
        if match.group(2) == "tenant_slug":
            return slug or "nowhere"
        return str(number) if match.group(1) else "nothing-here"

    return _VARIABLE.sub(value, route.rule.rule)


@pytest.fixture
def api(shop: Shop) -> dict[str, str]:
    with shop.bound():
        scopes = [p for p in PERMISSIONS if has_permission(Role.OWNER.value, p)]
        _, secret = services.create_api_key(Role.OWNER, "edge", scopes)
    return {"Authorization": f"Bearer {secret}"}


def assert_error_shape(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.json
    assert isinstance(body, dict) and set(body) >= {"code", "message"} and body["message"]
    if code is not None:
        assert body["code"] == code


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
@pytest.mark.parametrize("number", TOO_BIG, ids=["2^63", "10^40"])
def test_an_id_past_2_63_in_an_api_path_is_404(
    client: FlaskClient, api: dict[str, str], route: Route, number: int
) -> None:
    response = client.open(path_of(route, number), method=route.method, headers=api, json={})
    assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize("route", PAGED_ROUTES, ids=str)
@pytest.mark.parametrize("number", TOO_BIG, ids=["2^63", "10^40"])
def test_a_cursor_past_2_63_is_400(
    app: Flask, client: FlaskClient, api: dict[str, str], shop: Shop, route: Route, number: int
) -> None:
    cursor = base64.urlsafe_b64encode(str(number).encode()).decode().rstrip("=")
    path = build_url(app, route, None, object_values(route, shop))  # the listed objects' owner exists
    response = client.get(path + f"?cursor={cursor}", headers=api)
    assert_error_shape(response, 400, "invalid_cursor")


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize("body", [DEEP_OBJECT, NESTED_PAST_THE_LIMIT], ids=["10,000 deep", "70 deep"])
def test_deeply_nested_json_in_an_api_body_is_400(
    client: FlaskClient, api: dict[str, str], route: Route, body: bytes
) -> None:
    headers = {**api, "Content-Type": "application/json"}
    response = client.open(path_of(route, 1), method=route.method, headers=headers, data=body)
    assert_error_shape(response, 400, "too_deep")


MONEY_BODIES = {
    "plan price": (
        "POST",
        "/api/v1/plans",
        {"bundle_id": "1", "name": "x", "period_unit": "month", "price": 2**63},
    ),
    "plan list price": ("PATCH", "/api/v1/plans/1", {"list_price": 2**63}),
    "order unit price": (
        "POST",
        "/api/v1/orders",
        {
            "external_id": "E1",
            "customer": {"email": "a@example.com"},
            "lines": [{"plan_id": "1", "unit_price": 2**63}],
        },
    ),
    "refund amount": ("POST", "/api/v1/orders/1/refunds", {"amount": 2**64}),
    "spend amount": ("POST", "/api/v1/channels/1/spend", {"day": "2026-01-01", "amount": 2**63}),
    "negative": ("POST", "/api/v1/orders/1/refunds", {"amount": -(2**63) - 1}),
}


@pytest.mark.parametrize("case", MONEY_BODIES.values(), ids=MONEY_BODIES.keys())
def test_an_amount_past_2_63_is_400(
    client: FlaskClient, api: dict[str, str], case: tuple[str, str, Any]
) -> None:
    method, path, body = case
    response = client.open(path, method=method, headers=api, json=body)
    assert_error_shape(response, 400, "number_out_of_range")


@pytest.mark.parametrize(("shop_locale", "chinese"), [("zh_CN", True), ("en", False)])
def test_the_refusal_speaks_the_shops_language(
    client: FlaskClient, api: dict[str, str], shop: Shop, shop_locale: str, chinese: bool
) -> None:
    shop.tenant.locale = shop_locale
    db.session.commit()
    headers = {**api, "Accept-Language": "en" if chinese else "zh-CN", "Content-Type": "application/json"}
    deep = client.post("/api/v1/orders", headers=headers, data=DEEP_ARRAY)
    big = client.post("/api/v1/orders/1/refunds", headers=headers, json={"amount": 2**63})
    assert deep.json is not None and big.json is not None
    for message in (deep.json["message"], big.json["message"]):
        assert bool(re.search(r"[\u4e00-\u9fff]", message)) is chinese, message


def test_amounts_that_overflow_only_together_are_still_the_senders_error(
    client: FlaskClient, api: dict[str, str], shop: Shop
) -> None:
    with shop.bound():
        plan_id = make_product(price=2**62).plan.id
    lines = [{"plan_id": str(plan_id), "quantity": 2, "unit_price": 2**62}, {"plan_id": str(plan_id)}]
    body = {"external_id": "BIG-1", "customer": {"email": "a@example.com"}, "lines": lines}
    response = client.post("/api/v1/orders", headers=api, json=body)
    assert 400 <= response.status_code < 500
    assert response.json is not None and set(response.json) >= {"code", "message"}


@pytest.mark.parametrize("field", ["bundle_id", "plan_id"])
def test_an_id_past_2_63_inside_a_body_is_not_a_500(
    client: FlaskClient, api: dict[str, str], field: str
) -> None:
    if field == "bundle_id":
        body: dict[str, Any] = {"bundle_id": str(2**63), "name": "x", "period_unit": "month", "price": 100}
        response = client.post("/api/v1/plans", headers=api, json=body)
    else:
        lines = [{"plan_id": str(2**63)}]
        response = client.post(
            "/api/v1/orders",
            headers=api,
            json={"external_id": "E2", "customer": {"email": "a@example.com"}, "lines": lines},
        )
    assert 400 <= response.status_code < 500
    assert response.json is not None and set(response.json) >= {"code", "message"}


@pytest.mark.parametrize("route", PAGE_ID_ROUTES, ids=str)
def test_an_id_past_2_63_in_a_back_office_path_is_404(client: FlaskClient, shop: Shop, route: Route) -> None:
    login(client, shop.owner)
    assert client.open(path_of(route, 2**63, shop.slug), method=route.method).status_code == 404


def test_an_id_past_2_63_on_the_customer_pages_is_404(client: FlaskClient, shop: Shop) -> None:
    path, _grant, _card = my_rights_link(shop)
    assert client.post(f"{path}/grants/{2**63}/reveal").status_code == 404
    assert client.post(f"{path}/grants/{'9' * 5000}/redeem").status_code == 404  # past Python's 4,300 digits


def signed_generic(body: bytes) -> f.Delivery:
    header = f.stripe_header(f.GENERIC_SECRET, body, None)
    return f.Delivery(body, {"Content-Type": "application/json", "Quanyi-Signature": header})


WEBHOOK_BODIES = {
    "10,000 deep": DEEP_ARRAY,
    "70 deep inside an order": json.dumps(
        {**f.generic_order("DEEP-1"), "extra": json.loads("[" * 70 + "]" * 70)}
    ).encode(),
    "total past 2^63": json.dumps(f.generic_order("BIG-1", unit_price=2**63)).encode(),
}


@pytest.mark.parametrize("body", WEBHOOK_BODIES.values(), ids=WEBHOOK_BODIES.keys())
def test_a_signed_webhook_of_that_kind_is_400_and_kept(client: FlaskClient, shop: Shop, body: bytes) -> None:
    with shop.bound():
        channel = f.make_channel("generic", name="自营商城")
        channel_id, url = channel.id, f"/hooks/{channel.public_id}"
    response = signed_generic(body).post(client, url)
    assert_error_shape(response, 400, "invalid_delivery")
    kept = response.json["kept"]  # type: ignore[index]
    with shop.bound():
        rows = f.inbox_of(db.session.get(Channel, (shop.tenant.id, channel_id)))  # type: ignore[arg-type]
        assert [(str(row.id), row.status) for row in rows] == [(kept, "invalid")]


def test_flask_get_json_is_bounded_too(app: Flask) -> None:
    with app.test_request_context("/", method="POST", data=DEEP_ARRAY, content_type="application/json"):
        from flask import request

        assert request.get_json(silent=True) is None


def test_a_long_number_typed_into_a_search_box_finds_the_order_it_names(
    client: FlaskClient, shop: Shop
) -> None:
    wechat_transaction = "4200001234202612041234567890"  # 28 digits: no order id, but an external one
    with shop.bound():
        place_order(make_product(), wechat_transaction)
    login(client, shop.owner)
    found = client.get(f"/t/{shop.slug}/orders/?q={wechat_transaction}")
    assert found.status_code == 200 and wechat_transaction in found.get_data(as_text=True)


def test_a_page_number_no_column_holds_is_a_400_page_not_a_500(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    assert client.get(f"/t/{shop.slug}/orders/?page={10**30}").status_code == 400
