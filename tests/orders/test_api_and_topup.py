"""The orders API (idempotent create, read, list, pay, refund, grants, redemptions) and direct top-up against
a real signed-HTTP supplier server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orders import topup
from orders.models import Grant, Order
from saas.extensions import db
from tenants import services as tenant_services
from tenants.roles import PERMISSIONS, Role
from tests.factories import Shop, login
from tests.orders.factories import add_keys, grants_of, make_product, make_right, place_order


@pytest.fixture
def api(shop: Shop) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "orders", list(PERMISSIONS))
    return {"Authorization": f"Bearer {secret}"}


def test_creating_an_order_through_the_api_is_idempotent(
    client: FlaskClient, shop: Shop, api: dict[str, str]
) -> None:
    with shop.bound():
        product = make_product(price=1500)
        add_keys(product.right, 3)
        plan_id = str(product.plan.id)
    body = {
        "customer": {"email": "api@example.test"},
        "lines": [{"plan_id": plan_id, "quantity": 2}],
        "paid": True,
    }
    headers = {**api, "Idempotency-Key": "ORDER-42"}
    first = client.post("/api/v1/orders", json=body, headers=headers)
    again = client.post("/api/v1/orders", json=body, headers=headers)
    assert first.status_code == 201 and first.json["created"] is True  # type: ignore[index]
    assert again.json["created"] is False and again.json["id"] == first.json["id"]  # type: ignore[index]
    order = first.json
    assert order["status"] == "fulfilled" and order["total"] == 3000 and len(order["grants"]) == 2  # type: ignore[index]
    assert all("secret" not in g and g["mask"] for g in order["grants"])  # type: ignore[index]
    listed = client.get("/api/v1/orders?status=fulfilled&limit=1", headers=api).json
    assert [o["id"] for o in listed["items"]] == [order["id"]] and listed["next_cursor"] is None  # type: ignore[index]
    grant = client.get(f"/api/v1/grants/{order['grants'][0]['id']}", headers=api)  # type: ignore[index]
    assert grant.status_code == 200 and grant.json["status"] == "delivered"  # type: ignore[index]
    assert client.post("/api/v1/orders", json=body, headers=api).status_code == 422  # no external id at all


def test_paying_refunding_and_redeeming_through_the_api(
    client: FlaskClient, shop: Shop, api: dict[str, str]
) -> None:
    with shop.bound():
        product = make_product(price=990)
        add_keys(product.right, 2)
        order_id = place_order(product, "API-2").id
    paid = client.post(f"/api/v1/orders/{order_id}/pay", json={"reference": "wx-1"}, headers=api)
    assert paid.status_code == 200 and paid.json["status"] == "fulfilled"  # type: ignore[index]
    grant_id = paid.json["grants"][0]["id"]  # type: ignore[index]
    redeemed = client.post("/api/v1/redemptions", json={"grant_id": grant_id}, headers=api)
    assert redeemed.json == {"outcome": "redeemed", "grant_id": grant_id}
    repeat = client.post("/api/v1/redemptions", json={"grant_id": grant_id}, headers=api)
    assert repeat.status_code == 200 and repeat.json["outcome"] == "already_redeemed"  # type: ignore[index]
    unknown = client.post("/api/v1/redemptions", json={"code": "NOPE-NOPE"}, headers=api)
    assert unknown.status_code == 422 and unknown.json["code"] == "unknown_code"  # type: ignore[index]
    refund = {"reason": "customer complaint", "external_id": "rf-1"}
    first = client.post(f"/api/v1/orders/{order_id}/refunds", json=refund, headers=api)
    again = client.post(f"/api/v1/orders/{order_id}/refunds", json=refund, headers=api)
    assert first.status_code == 201 and first.json["amount"] == 990  # type: ignore[index]
    assert again.json["id"] == first.json["id"]  # type: ignore[index]
    assert client.post(f"/api/v1/orders/{order_id}/refunds", json={}, headers=api).status_code == 422


# ---------------------------------------------------------------- top-up against a real HTTP server


class Supplier:
    """A tiny supplier: checks signatures, fails the first `fail_first` calls with 503, remembers calls."""

    def __init__(self, secret: str, fail_first: int = 0, answer: str = "success") -> None:
        self.secret, self.fail_first, self.answer = secret, fail_first, answer
        self.calls: list[dict[str, Any]] = []
        self.topped_up: set[str] = set()


def _handler(supplier: Supplier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = hmac.new(
                supplier.secret.encode(),
                self.headers[topup.TIMESTAMP_HEADER].encode() + b"." + body,
                hashlib.sha256,
            ).hexdigest()
            if not hmac.compare_digest(expected, self.headers[topup.SIGNATURE_HEADER] or ""):
                self._answer(401, {"status": "failed", "message": "bad signature"})
                return
            payload = json.loads(body)
            supplier.calls.append(payload)
            if len(supplier.calls) <= supplier.fail_first:
                self._answer(503, {"status": "failed"})
                return
            supplier.topped_up.add(payload["request_id"])  # idempotent per request id
            self._answer(
                200,
                {
                    "status": supplier.answer,
                    "reference": f"SUP-{payload['request_id']}",
                    "message": "" if supplier.answer == "success" else "account closed",
                },
            )

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def supplier_server() -> Iterator[tuple[ThreadingHTTPServer, Supplier]]:
    supplier = Supplier("top-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(supplier))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, supplier
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _topup_product(server: ThreadingHTTPServer, secret: str = "top-secret") -> Any:
    url = f"http://127.0.0.1:{server.server_address[1]}/topup"
    right = make_right(
        "视频会员直充", kind="topup", topup_settings={"url": url, "secret": secret, "timeout": 5}
    )
    return make_product(right)


def test_a_topup_is_requested_once_signed_and_retried_on_5xx(
    app: Flask, shop: Shop, supplier_server: tuple[ThreadingHTTPServer, Supplier]
) -> None:
    server, supplier = supplier_server
    supplier.fail_first = 1
    app.config.update(TOPUP_RETRY_DELAYS=(0, 0), TOPUP_POLL_DELAYS=())
    with shop.bound():
        order = place_order(_topup_product(server), "TOP-1", paid=True)
        (grant,) = grants_of(order.id)
        assert grant.status == "delivered" and grant.topup_state == "succeeded"
        assert grant.topup_reference == f"SUP-{grant.id}"
        assert [c["request_id"] for c in supplier.calls] == [str(grant.id)] * 2
        assert db.session.get(Order, (shop.tenant.id, order.id)).status == "fulfilled"  # type: ignore[union-attr]
        assert topup.run_topup(grant.id) == "skipped"  # never twice for the same grant
        assert len(supplier.calls) == 2


def test_a_failed_topup_is_listed_and_can_be_retried_or_refunded(
    app: Flask, client: FlaskClient, shop: Shop, supplier_server: tuple[ThreadingHTTPServer, Supplier]
) -> None:
    server, supplier = supplier_server
    supplier.answer = "failed"
    app.config.update(TOPUP_RETRY_DELAYS=(), TOPUP_POLL_DELAYS=())
    with shop.bound():
        order_id = place_order(_topup_product(server), "TOP-2", paid=True).id
        (grant,) = grants_of(order_id)
        grant_id = grant.id
        assert grant.status == "failed" and grant.topup_error == "account closed"
    login(client, shop.members["support"])
    page = client.get(f"/t/{shop.slug}/orders/topups").get_data(as_text=True)
    assert f'data-grant-id="{grant_id}"' in page and "account closed" in page
    supplier.answer = "success"
    assert client.post(f"/t/{shop.slug}/orders/grants/{grant_id}/retry-topup").status_code == 302
    with shop.bound():
        assert db.session.get(Grant, (shop.tenant.id, grant_id), populate_existing=True).status == "delivered"  # type: ignore[union-attr]
    assert f'data-grant-id="{grant_id}"' not in client.get(f"/t/{shop.slug}/orders/topups").get_data(
        as_text=True
    )


def test_a_wrong_secret_fails_visibly(
    app: Flask, shop: Shop, supplier_server: tuple[ThreadingHTTPServer, Supplier]
) -> None:
    server, supplier = supplier_server
    app.config.update(TOPUP_RETRY_DELAYS=(), TOPUP_POLL_DELAYS=())
    with shop.bound():
        order = place_order(_topup_product(server, secret="wrong"), "TOP-3", paid=True)
        (grant,) = grants_of(order.id)
        assert grant.status == "failed" and "401" in (grant.topup_error or "")
        assert supplier.calls == []
