"""Outbound webhooks: signed events to a tenant's endpoint, retried on a schedule, disabled when failing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient

from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tests.factories import Outbox, Shop, login
from tests.integrations import factories as f


class Receiver:
    """A merchant's endpoint on loopback: records what it gets and answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/quanyi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers["Quanyi-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_a_fulfilled_channel_order_is_sent_signed_to_the_endpoint_once(
    client: FlaskClient, shop: Shop, receiver: Receiver
) -> None:
    from integrations import outbound

    with shop.bound():
        plan = f.card_plan()
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        public_id = channel.public_id
        _endpoint, secret = outbound.create_endpoint(receiver.url, ["order.fulfilled"])
    order = f.shopify_order(9001)
    f.shopify(order).post(client, f"/hooks/{public_id}")
    f.shopify(order).post(client, f"/hooks/{public_id}")  # another delivery of the same order
    ((headers, body),) = receiver.received
    assert verify(secret, headers, body) and headers["Quanyi-Event"] == "order.fulfilled"
    event = json.loads(body)
    assert event["type"] == "order.fulfilled" and event["data"]["external_id"] == "9001"
    assert event["data"]["status"] == "fulfilled" and event["id"] == headers["Quanyi-Delivery"]


def test_inner_packages_emit_through_named_signals(shop: Shop, receiver: Receiver) -> None:
    from blinker import signal

    from integrations import outbound

    with shop.bound():
        outbound.create_endpoint(receiver.url, ["grant.redeemed"])
    payload = {"grant_id": "42", "order_id": "7"}
    for _ in range(2):
        signal("quanyi.grant.redeemed").send(
            None, tenant_id=shop.tenant.id, payload=payload, key="grant.redeemed:42"
        )
    signal("quanyi.stock.low").send(None, tenant_id=shop.tenant.id, payload={"right_id": "1"})
    assert [json.loads(body)["data"] for _h, body in receiver.received] == [payload]


def test_failures_are_retried_on_the_schedule_and_the_endpoint_is_disabled_with_a_mail(
    client: FlaskClient, shop: Shop, receiver: Receiver, outbox: Outbox
) -> None:
    from integrations import outbound
    from integrations.models import OutboundDelivery, WebhookEndpoint

    receiver.status = 500
    with shop.bound():
        endpoint, _secret = outbound.create_endpoint(receiver.url, ["*"])
        endpoint_id = endpoint.id
        start = utcnow()
        with frozen_time(start):
            (delivery_id,) = outbound.emit("stock.low", {"right_id": "1"})
        moments = []
        moment = start
        while True:
            delivery = db.session.get(OutboundDelivery, (shop.tenant.id, delivery_id), populate_existing=True)
            assert delivery is not None
            if delivery.next_attempt_at is None:
                break
            moments.append(int((delivery.next_attempt_at - moment).total_seconds()))
            moment = delivery.next_attempt_at
            with frozen_time(moment):
                outbound.send_due()
        assert moments == [30, 120, 600, 3600, 6 * 3600] and delivery.status == "failed"
        assert delivery.attempts == 6 and delivery.last_status_code == 500
        for n in range(outbound.DISABLE_AFTER_FAILURES - 6):
            with frozen_time(moment + dt.timedelta(hours=n + 1)):
                outbound.emit("stock.low", {"right_id": str(n)})
        found = db.session.get(WebhookEndpoint, (shop.tenant.id, endpoint_id), populate_existing=True)
        assert found is not None and found.status == "disabled"
    (mail,) = outbox.to(shop.owner.email)
    assert "disabled" in str(mail["Subject"]) and receiver.url in Outbox.body(mail)
    attempts = len(receiver.received)
    with shop.bound():
        outbound.emit("stock.low", {"right_id": "x"})
    assert len(receiver.received) == attempts  # a disabled endpoint gets nothing

    receiver.status = 204
    login(client, shop.owner)
    client.post(f"/t/{shop.slug}/channels/webhooks/{endpoint_id}/status", data={"active": "1"})
    client.post(f"/t/{shop.slug}/channels/webhooks/deliveries/{delivery_id}/redeliver")
    page = client.get(f"/t/{shop.slug}/channels/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "204" in page and "by hand" in page and "500" in page
    with shop.bound():
        delivered = db.session.get(OutboundDelivery, (shop.tenant.id, delivery_id), populate_existing=True)
        assert delivered is not None and delivered.status == "succeeded"
