"""Risk control (风控): orders over a purchase limit, from a blocked buyer or over a velocity rule are held
before anything is allocated; a person approves (fulfils once) or rejects (refund or cancel); anomalies are
flagged, shown and sent to outbound webhooks."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from blinker import signal
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders import delivery, redemption, refunds, services
from orders.models import Grant, Order, Redemption
from orders.risk import services as risk
from orders.risk.models import RiskFlag
from saas.extensions import db
from saas.timeutil import frozen_time
from tenants import services as tenant_services
from tenants.models import AuditEvent
from tenants.roles import PERMISSIONS, Role
from tests.factories import Shop, login
from tests.integrations import factories as f
from tests.orders.factories import add_keys, grants_of, key_status_counts, make_product, order_request
from tests.orders.test_concurrency import run_together

NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def api(shop: Shop) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "risk", list(PERMISSIONS))
    return {"Authorization": f"Bearer {secret}"}


def limited_product(limit: int = 1, keys: int = 5) -> Any:
    product = make_product()
    product.plan.purchase_limit = limit
    db.session.commit()
    add_keys(product.right, keys)
    return product


def status_of(order_id: int) -> tuple[str, str | None]:
    order = db.session.get(Order, (_tenant(), order_id), populate_existing=True)
    assert order is not None
    return order.status, order.hold_reason


def _tenant() -> int:
    from tenants.scoping import current_tenant_id

    return current_tenant_id()


def audit_actions(object_id: int) -> list[str]:
    rows = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_id == str(object_id)).order_by(AuditEvent.id)
    )
    return list(rows)


# ---------------------------------------------------------------- purchase limits on every path


def test_a_customer_over_the_purchase_limit_is_held_on_the_api_path(
    client: FlaskClient, shop: Shop, api: dict[str, str]
) -> None:
    with shop.bound():
        plan_id = str(limited_product(limit=1).plan.id)
    body = {"customer": {"email": "scalper@example.test"}, "lines": [{"plan_id": plan_id}], "paid": True}
    first = client.post("/api/v1/orders", json={**body, "external_id": "L-1"}, headers=api)
    second = client.post("/api/v1/orders", json={**body, "external_id": "L-2"}, headers=api)
    assert first.json["status"] == "fulfilled"  # type: ignore[index]
    assert second.json["status"] == "held"  # type: ignore[index]
    assert "Purchase limit" in second.json["hold_reason"]  # type: ignore[index]
    assert second.json["grants"] == []  # type: ignore[index]  nothing allocated while held


def test_the_limit_counts_the_plan_period_only(shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=1)
        with frozen_time(NOON):
            services.create_order(order_request(product, "P-1", paid=True))
        with frozen_time(NOON + dt.timedelta(days=31)):  # a month plan: last month's order no longer counts
            order = services.create_order(order_request(product, "P-2", paid=True)).order
        assert status_of(order.id)[0] == "fulfilled"


def test_a_channel_order_over_the_purchase_limit_is_held_not_fulfilled(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        plan = f.card_plan(3990)
        plan.purchase_limit = 1
        db.session.commit()
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        public_id, channel_id = channel.public_id, channel.id
    for number in (7001, 7002):
        payload = f.shopify_order(number)
        payload["browser_ip"] = "203.0.113.9"
        f.shopify(payload).post(client, f"/hooks/{public_id}")
    with shop.bound():
        from integrations.models import Channel

        found = db.session.get(Channel, (shop.tenant.id, channel_id))
        orders = {o.external_id: o for o in f.orders_of(found)}  # type: ignore[arg-type]
        assert orders["7001"].status == "fulfilled"
        assert orders["7002"].status == "held" and orders["7002"].hold_reason
        assert orders["7002"].client_ip == "203.0.113.9"
        assert grants_of(orders["7002"].id) == []


# ---------------------------------------------------------------- blocklists


@pytest.mark.parametrize(
    ("kind", "value", "request_facts"),
    [
        ("email", "Bad@Example.test", {"email": "bad@example.test"}),
        ("email_domain", "@spam.test", {"email": "anyone@spam.test"}),
        ("phone", "13900000000", {"phone": "13900000000"}),
        ("ip", "198.51.100.7", {"client_ip": "198.51.100.7"}),
        ("ip", "10.20.0.0/16", {"client_ip": "10.20.33.4"}),
        ("device", "DEV-42", {"device_id": "dev-42"}),
        ("channel_customer", "shopify-99", {"external_id": "shopify-99"}),
    ],
)
def test_a_blocked_buyer_s_order_is_held_with_the_reason(
    shop: Shop, kind: str, value: str, request_facts: dict[str, str]
) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        risk.add_block(kind, value, reason="chargebacks last week")
        request = order_request(product, f"B-{kind}-{value}", paid=True)
        customer = request.customer
        customer.email = request_facts.get("email", "clean@example.test")
        customer.phone = request_facts.get("phone")
        customer.external_id = request_facts.get("external_id")
        request.client_ip = request_facts.get("client_ip", "192.0.2.1")
        request.device_id = request_facts.get("device_id")
        order = services.create_order(request).order
        status, reason = status_of(order.id)
        assert status == "held"
        assert kind in (reason or "") and "chargebacks last week" in (reason or "")  # shown to reviewers
        assert key_status_counts(product.right.id) == {"available": 5}
        clean = services.create_order(order_request(product, f"OK-{kind}", paid=True, email="ok@fine.test"))
        assert status_of(clean.order.id)[0] == "fulfilled"


def test_blocklist_entries_record_who_and_why_and_refuse_bad_values(shop: Shop) -> None:
    with shop.bound():
        entry = risk.add_block("ip", "10.0.0.9/8", reason="botnet")
        assert entry.value == "10.0.0.0/8" and entry.reason == "botnet" and entry.added_by
        with pytest.raises(risk.RiskError):
            risk.add_block("ip", "not-an-ip", reason="x")
        with pytest.raises(risk.RiskError):
            risk.add_block("ip", "10.0.0.0/8", reason="again")
        assert "risk.blocked" in audit_actions(entry.id)


# ---------------------------------------------------------------- velocity


def test_orders_per_ip_within_the_window_are_held_and_the_window_slides(shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100, keys=10)
        risk.save_rule(risk.RuleSetting("orders_per_ip", 2, 10, True))

        def place(n: int) -> str:
            request = order_request(product, f"V-{n}", paid=True, email=f"v{n}@example.test")
            request.client_ip = "203.0.113.50"
            return status_of(services.create_order(request).order.id)[0]

        with frozen_time(NOON):
            assert [place(1), place(2), place(3)] == ["fulfilled", "fulfilled", "held"]
        with frozen_time(NOON + dt.timedelta(minutes=11)):
            assert place(4) == "fulfilled"


def test_redemptions_per_ip_over_the_threshold_are_flagged_not_refused(shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100, keys=5)
        risk.save_rule(risk.RuleSetting("redemptions_per_ip", 2, 60, True))
        grant_ids = []
        for n in range(3):
            order = services.create_order(order_request(product, f"R-{n}", paid=True, email=f"r{n}@x.test"))
            grant_ids.append(grants_of(order.order.id)[0].id)
        with frozen_time(NOON):
            outcomes = [
                redemption.redeem_grant(g, source="customer", ip="198.51.100.1").outcome for g in grant_ids
            ]
        assert outcomes == ["redeemed"] * 3
        flags = list(db.session.scalars(select(RiskFlag).where(RiskFlag.kind == "redemption_velocity")))
        assert len(flags) == 1 and flags[0].ip == "198.51.100.1"
        flagged = db.session.scalars(select(Redemption.grant_id).where(Redemption.flagged.is_(True)))
        assert list(flagged) == [grant_ids[2]]


# ---------------------------------------------------------------- review: approve and reject


def held_paid_order(product: Any, external_id: str) -> int:
    risk.add_block("email", f"{external_id.lower()}@held.test", reason="manual review")
    order = services.create_order(
        order_request(product, external_id, paid=True, email=f"{external_id.lower()}@held.test")
    ).order
    assert status_of(order.id)[0] == "held"
    return order.id


def test_approving_a_held_order_fulfils_it_once_and_is_audited(shop: Shop, outbox: Any) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        order_id = held_paid_order(product, "A-1")
        first = risk.approve(order_id, note="known customer")
        again = risk.approve(order_id, note="clicked twice")
        assert first.acted and not again.acted
        assert status_of(order_id)[0] == "fulfilled"
        assert len(grants_of(order_id)) == 1
        assert "risk.order_approved" in audit_actions(order_id) and "order.held" in audit_actions(order_id)
        with pytest.raises(risk.RiskError):
            risk.approve(order_id, note="")


def test_two_concurrent_approvals_fulfil_once(app: Flask, shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        order_id = held_paid_order(product, "C-1")
        right_id = product.right.id
    results = run_together(
        app, shop.tenant.id, [lambda: risk.approve(order_id, note="ok").acted for _ in range(2)]
    )
    assert sorted(results) == [False, True]
    with shop.bound():
        assert len(grants_of(order_id)) == 1
        assert key_status_counts(right_id) == {"available": 4, "delivered": 1}


def test_rejecting_a_paid_held_order_refunds_it_and_an_unpaid_one_is_cancelled(shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        paid_id = held_paid_order(product, "J-1")
        assert risk.reject(paid_id, note="stolen card") == "refunded"
        assert refunds.refund_total(paid_id) == product.plan.price
        risk.add_block("email", "unpaid@held.test", reason="review")
        unpaid = services.create_order(order_request(product, "J-2", email="unpaid@held.test")).order
        assert status_of(unpaid.id)[0] == "held"
        assert risk.reject(unpaid.id, note="fake buyer") == "cancelled"
        assert refunds.refund_total(unpaid.id) == 0
        assert "risk.order_rejected" in audit_actions(paid_id)
        assert key_status_counts(product.right.id) == {"available": 5}
        with pytest.raises(risk.RiskError):
            risk.reject(paid_id, note="again")


def test_the_review_queue_shows_held_orders_and_lets_finance_decide(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        order_id = held_paid_order(product, "Q-1")
    login(client, shop.members["finance"])
    page = client.get(f"/t/{shop.slug}/risk/")
    assert page.status_code == 200 and "manual review" in page.get_data(as_text=True)
    client.post(f"/t/{shop.slug}/risk/orders/{order_id}/approve", data={"note": "looks fine"})
    with shop.bound():
        assert status_of(order_id)[0] == "fulfilled"


def test_an_analyst_sees_the_queue_but_cannot_decide(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        order_id = held_paid_order(limited_product(limit=100), "N-1")
    login(client, shop.members["analyst"])
    assert client.get(f"/t/{shop.slug}/risk/").status_code == 200
    assert (
        client.post(f"/t/{shop.slug}/risk/orders/{order_id}/approve", data={"note": "x"}).status_code == 403
    )
    with shop.bound():
        assert status_of(order_id)[0] == "held"


# ---------------------------------------------------------------- anomalies


def test_a_redemption_after_refund_is_flagged_and_sent_as_risk_flagged(shop: Shop) -> None:
    sent: list[dict[str, Any]] = []

    def listen(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs["payload"])

    signal("quanyi.risk.flagged").connect(listen)
    try:
        with shop.bound():
            product = limited_product(limit=100)
            order = services.create_order(order_request(product, "F-1", paid=True)).order
            grant_id = grants_of(order.id)[0].id
            refunds.refund(refunds.RefundRequest(order_id=order.id, reason="customer asked"))
            outcome = redemption.redeem_grant(grant_id, source="channel")
            assert outcome.outcome == "rejected_refunded"
            flag = db.session.scalar(select(RiskFlag).where(RiskFlag.grant_id == grant_id))
            assert flag is not None and flag.kind == "redemption_after_refund"
    finally:
        signal("quanyi.risk.flagged").disconnect(listen)
    assert [p["kind"] for p in sent] == ["redemption_after_refund"]


def test_a_key_revealed_from_many_addresses_is_flagged_once(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100)
        order = services.create_order(order_request(product, "K-1", paid=True)).order
        grant = grants_of(order.id)[0]
        for n in range(6):
            delivery.reveal(grant, by="customer", ip=f"203.0.113.{n + 1}")
        flags = list(db.session.scalars(select(RiskFlag).where(RiskFlag.kind == "reveal_many_ips")))
        assert len(flags) == 1 and flags[0].grant_id == grant.id
    login(client, shop.members["analyst"])
    page = client.get(f"/t/{shop.slug}/risk/anomalies").get_data(as_text=True)
    assert "reveal_many_ips" in page


def test_a_burst_of_orders_for_one_plan_is_flagged(shop: Shop) -> None:
    with shop.bound():
        product = limited_product(limit=100, keys=6)
        risk.save_rule(risk.RuleSetting("orders_per_plan", 3, 10, True))
        with frozen_time(NOON):
            for n in range(5):
                services.create_order(order_request(product, f"BU-{n}", paid=True, email=f"b{n}@x.test"))
        flags = list(db.session.scalars(select(RiskFlag).where(RiskFlag.kind == "plan_burst")))
        assert len(flags) == 1 and flags[0].plan_id == product.plan.id
        assert "Burst: 4 orders for one plan within 10 minutes." in flags[0].reason  # the 4th crossed 3
        resolved = risk.resolve_flag(flags[0].id, status="dismissed", note="a promotion")
        assert resolved.status == "dismissed" and "risk.flag_resolved" in audit_actions(flags[0].id)


def test_no_grant_is_created_for_a_held_order(shop: Shop) -> None:
    with shop.bound():
        order_id = held_paid_order(limited_product(limit=100), "G-1")
        assert db.session.scalar(select(Grant.id).where(Grant.order_id == order_id)) is None
