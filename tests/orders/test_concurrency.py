"""Exactly-once under real concurrency: threads with their own app context, session and tenant binding.

These run on SQLite (BEGIN IMMEDIATE serialises writers) and, when TEST_DATABASE_URL is set, on PostgreSQL
(FOR UPDATE SKIP LOCKED and conditional updates under row locks). `test_*_on_postgres` insist on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from orders import redemption, refunds, services
from orders.models import Grant, Order, Redemption, Refund
from saas.extensions import db
from tenants.scoping import tenant_bound
from tests.factories import Shop
from tests.orders.factories import (
    add_keys,
    grants_of,
    key_status_counts,
    keys_in_two_live_grants,
    make_product,
    order_request,
    place_order,
)


def run_together(app: Flask, tenant_id: int, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, all released at once; return results, raise the first error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], Any]) -> None:
        with app.app_context(), tenant_bound(tenant_id):
            try:
                barrier.wait(timeout=30)
                results[index] = call()
            except BaseException as error:  # collected and re-raised in the test thread
                db.session.rollback()
                errors.append(error)
            finally:
                db.session.remove()

    db.session.commit()
    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    db.session.expire_all()
    return results


def create_call(request: services.OrderRequest) -> Callable[[], Any]:
    return lambda: services.create_order(request).order.id


def refund_call(order_id: int) -> Callable[[], Any]:
    return lambda: refunds.refund(refunds.RefundRequest(order_id=order_id, reason="chargeback")).id


def redeem_call(grant_id: int) -> Callable[[], Any]:
    return lambda: redemption.redeem_grant(grant_id, source="api").outcome


def more_buyers_than_keys(app: Flask, shop: Shop, buyers: int = 12, keys: int = 5) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, keys)
        requests = [order_request(product, f"RUSH-{n}", paid=True) for n in range(buyers)]
        right_id = product.right.id
    run_together(app, shop.tenant.id, [create_call(r) for r in requests])
    with shop.bound():
        statuses = sorted(db.session.scalars(select(Order.status)))
        assert statuses.count("fulfilled") == keys
        assert statuses.count("backordered") == buyers - keys
        assert keys_in_two_live_grants() == 0
        assert key_status_counts(right_id) == {"delivered": keys}
        assert db.session.scalar(select(func.count()).select_from(Grant)) == buyers


def same_payment_five_times(app: Flask, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 10)
        order_id = place_order(product, "TWICE-1", quantity=2).id
        right_id = product.right.id
    results = run_together(app, shop.tenant.id, [lambda: services.mark_paid(order_id).acted] * 5)
    assert sorted(results) == [False, False, False, False, True]
    with shop.bound():
        assert len(grants_of(order_id)) == 2
        assert key_status_counts(right_id) == {"available": 8, "delivered": 2}
        assert keys_in_two_live_grants() == 0


def same_paid_webhook_five_times(app: Flask, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 10)
        request = order_request(product, "HOOK-1", paid=True)
        right_id = product.right.id
    created = run_together(app, shop.tenant.id, [lambda: services.create_order(request).created] * 5)
    assert created.count(True) == 1
    with shop.bound():
        (order,) = db.session.scalars(select(Order).where(Order.external_id == "HOOK-1")).all()
        assert len(grants_of(order.id)) == 1
        assert key_status_counts(right_id) == {"available": 9, "delivered": 1}


def refund_racing_redemption(app: Flask, shop: Shop, rounds: int = 6) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, rounds)
        order_ids = [place_order(product, f"RACE-{n}", paid=True).id for n in range(rounds)]
        grant_ids = [grants_of(o)[0].id for o in order_ids]
        right_id = product.right.id
    for order_id, grant_id in zip(order_ids, grant_ids, strict=True):
        run_together(
            app,
            shop.tenant.id,
            [refund_call(order_id), redeem_call(grant_id)],
        )
    with shop.bound():
        for grant_id in grant_ids:
            grant = db.session.get(Grant, (shop.tenant.id, grant_id))
            assert grant is not None
            outcomes = list(
                db.session.scalars(select(Redemption.outcome).where(Redemption.grant_id == grant_id))
            )
            if grant.status == "redeemed":  # the redemption won: the refund came after and flagged it
                assert outcomes == ["redeemed"] and grant.flag == "refunded_after_redemption"
            else:  # the refund won: the key is void and the late redemption was rejected and flagged
                assert grant.status == "revoked" and grant.flag == "redeemed_after_refund"
                assert outcomes == ["rejected_refunded"]
        assert db.session.scalar(select(func.count()).select_from(Refund)) == rounds
        assert key_status_counts(right_id).get("available", 0) == 0


# ---------------------------------------------------------------- on the suite's database (SQLite by default)


def test_more_buyers_than_keys_never_oversell(app: Flask, shop: Shop) -> None:
    more_buyers_than_keys(app, shop)


def test_the_same_payment_five_times_at_once_allocates_once(app: Flask, shop: Shop) -> None:
    same_payment_five_times(app, shop)


def test_the_same_paid_order_created_five_times_at_once_is_one_order(app: Flask, shop: Shop) -> None:
    same_paid_webhook_five_times(app, shop)


def test_a_refund_racing_a_redemption_ends_consistent(app: Flask, shop: Shop) -> None:
    refund_racing_redemption(app, shop)


# ---------------------------------------------------------------- insisting on PostgreSQL


def test_more_buyers_than_keys_on_postgres(app: Flask, shop: Shop, on_postgres: None) -> None:
    more_buyers_than_keys(app, shop, buyers=40, keys=15)


def test_five_concurrent_payments_on_postgres(app: Flask, shop: Shop, on_postgres: None) -> None:
    same_payment_five_times(app, shop)
    same_paid_webhook_five_times(app, shop)


def test_refund_racing_redemption_on_postgres(app: Flask, shop: Shop, on_postgres: None) -> None:
    refund_racing_redemption(app, shop, rounds=10)
