"""Orders are idempotent, snapshot what was sold, and are fulfilled exactly once from inventory."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from sqlalchemy import select

from catalog.inventory import CARD_KEYS_ARRIVED
from orders import services
from orders.events import OrderError
from orders.fulfilment import fulfil_order
from orders.models import Grant, Order, OrderEvent
from saas import events
from saas.extensions import db
from saas.timeutil import frozen_time
from tenants.models import AuditEvent
from tests.factories import Shop
from tests.orders.factories import (
    add_keys,
    grants_of,
    key_status_counts,
    keys_in_two_live_grants,
    make_product,
    make_right,
    order_request,
    place_order,
)


def test_creating_the_same_order_twice_returns_the_first(shop: Shop) -> None:
    with shop.bound():
        product = make_product(price=2500)
        first = services.create_order(order_request(product, "A-1", quantity=2))
        again = services.create_order(order_request(product, "A-1", quantity=5))
        assert first.created and not again.created
        assert again.order.id == first.order.id
        assert db.session.query(Order).count() == 1
        assert first.order.total == 5000 and first.order.status == "pending"
        other_channel = services.create_order(order_request(product, "A-1", channel="taobao"))
        assert other_channel.created


def test_an_order_keeps_the_plan_and_bundle_as_sold(shop: Shop) -> None:
    with shop.bound():
        product = make_product(price=1990)
        order = place_order(product, "S-1")
        product.plan.price = 9990
        product.right.name = "renamed"
        db.session.commit()
        line = services.order_lines(order.id)[0] if hasattr(services, "order_lines") else None
        from orders.fulfilment import order_lines

        line = order_lines(order.id)[0]
        assert line.unit_price == 1990
        assert line.snapshot["plan"]["price"] == 1990
        assert line.snapshot["bundle"]["items"][0]["right"]["name"] == "视频月卡"


def test_paying_allocates_one_key_per_right_per_unit_earliest_expiry_first(shop: Shop) -> None:
    with shop.bound():
        video, music = make_right("视频月卡"), make_right("音乐月卡")
        product = make_product(video, music)
        soon = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
        late = add_keys(video, 3, prefix="LATE", expires_at=dt.datetime(2032, 1, 1, tzinfo=dt.UTC))
        early = add_keys(video, 2, prefix="SOON", expires_at=soon)
        add_keys(music, 5, prefix="MUS")
        order = place_order(product, "P-1", quantity=2)
        result = services.mark_paid(order.id, reference="pay-1")
        assert result.acted and result.status == "fulfilled" and len(result.delivered) == 4
        grants = grants_of(order.id)
        assert [g.status for g in grants] == ["delivered"] * 4
        video_keys = [g.card_key_id for g in grants if g.right_id == video.id]
        assert len(set(video_keys)) == 2
        assert all(
            g.valid_until is not None and g.valid_until <= soon for g in grants if g.right_id == video.id
        )
        assert key_status_counts(video.id) == {"available": 3, "delivered": 2}
        assert late and early
        assert all(g.unit_cost == 800 for g in grants)


def test_paying_again_allocates_nothing_more(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 5)
        order = place_order(product, "P-2")
        assert services.mark_paid(order.id).acted
        assert not services.mark_paid(order.id).acted
        assert not fulfil_order(order.id).acted
        again = services.create_order(order_request(product, "P-2", paid=True))
        assert not again.created
        assert len(grants_of(order.id)) == 1
        assert key_status_counts(product.right.id) == {"available": 4, "delivered": 1}
        events = db.session.scalars(select(OrderEvent.to_status).where(OrderEvent.order_id == order.id)).all()
        assert events == ["pending", "paid", "fulfilled"]


def test_no_stock_is_a_backorder_filled_in_payment_order_when_keys_arrive(app: Flask, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        orders = []
        for n in range(4):
            with frozen_time(dt.datetime(2030, 1, 1, 12, n, tzinfo=dt.UTC)):
                orders.append(place_order(product, f"B-{n}", paid=True))
        statuses = [db.session.get(Order, (shop.tenant.id, o.id)).status for o in orders]  # type: ignore[union-attr]
        assert statuses == ["fulfilled", "backordered", "backordered", "backordered"]
        add_keys(product.right, 2, prefix="NEW")
        events.publish(CARD_KEYS_ARRIVED, shop.tenant.id, {"right_id": product.right.id})
        db.session.expire_all()
        statuses = [db.session.get(Order, (shop.tenant.id, o.id)).status for o in orders]  # type: ignore[union-attr]
        assert statuses == ["fulfilled", "fulfilled", "fulfilled", "backordered"]
        assert keys_in_two_live_grants() == 0
        assert key_status_counts(product.right.id) == {"delivered": 3}


def test_a_partially_stocked_order_is_partially_fulfilled(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 2)
        order = place_order(product, "PP-1", quantity=3, paid=True)
        assert db.session.get(Order, (shop.tenant.id, order.id)).status == "partially_fulfilled"  # type: ignore[union-attr]
        assert sorted(g.status for g in grants_of(order.id)) == ["backordered", "delivered", "delivered"]


def test_reusable_keys_are_delivered_up_to_their_limit(shop: Shop) -> None:
    with shop.bound():
        right = make_right("共享账号", reusable=True, max_deliveries=3)
        product = make_product(right)
        add_keys(right, 1, max_deliveries=3)
        results = [place_order(product, f"R-{n}", paid=True) for n in range(4)]
        statuses = [db.session.get(Order, (shop.tenant.id, o.id)).status for o in results]  # type: ignore[union-attr]
        assert statuses == ["fulfilled", "fulfilled", "fulfilled", "backordered"]
        assert key_status_counts(right.id) == {"delivered": 1}


def test_generated_codes_and_links_are_delivered_without_stock(shop: Shop) -> None:
    with shop.bound():
        code_right = make_right("外卖券", kind="code", code_prefix="WM", code_length=10)
        link_right = make_right("电子书", kind="link", link_url="https://books.example/claim")
        product = make_product(code_right, link_right)
        order = place_order(product, "C-1", quantity=3, paid=True)
        grants = grants_of(order.id)
        codes = [g for g in grants if g.kind == "code"]
        assert len(codes) == 3 and len({g.code_hash for g in codes}) == 3
        assert all(g.status == "delivered" and g.mask.startswith("WM") for g in codes)
        assert all(g.link_url == "https://books.example/claim" for g in grants if g.kind == "link")
        from orders.allocation import reveal_grant_secret

        code = reveal_grant_secret(codes[0])
        assert code.startswith("WM") and len(code) == 12
        assert not set(code[2:]) & set("01OIL")


def test_fulfilment_is_audited_and_transitions_recorded(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "AU-1", paid=True)
        actions = set(
            db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(order.id)))
        )
        assert {"order.created", "order.paid", "order.fulfilled"} <= actions


def test_unpaid_orders_can_be_cancelled_and_paid_ones_cannot(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        pending = place_order(product, "X-1")
        assert services.cancel_order(pending.id, reason="customer changed mind")
        paid = place_order(product, "X-2", paid=True)
        with pytest.raises(OrderError):
            services.cancel_order(paid.id, reason="too late")
        with pytest.raises(OrderError):
            services.cancel_order(pending.id, reason="")


def test_unknown_plans_and_bad_quantities_are_refused(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        request = order_request(product, "V-1", quantity=0)
        with pytest.raises(OrderError):
            services.create_order(request)
        request = order_request(product, "V-2")
        request.lines[0].plan_id = 12345
        with pytest.raises(OrderError):
            services.create_order(request)
        assert db.session.query(Grant).count() == 0
