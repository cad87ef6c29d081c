"""The inbox drained in batches: a burst stored while no worker ran is applied a batch at a time, with the
answers the deliveries would get one by one (limits, velocity, refunds after their payment, holds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from integrations.inbound import drain
from integrations.models import Channel
from integrations.tasks import drain_inbox
from orders.models import Delivery, Grant, Order
from orders.risk.models import RiskRule
from saas import jobs
from saas.extensions import db
from tests.factories import Shop
from tests.integrations import factories as f
from tests.integrations.test_inbox_reliability import redis_is_down
from tests.integrations.test_outbound import Receiver, receiver  # noqa: F401 - the fixture


@pytest.fixture
def stored_only(app: Flask) -> Iterator[None]:
    """Deliveries are acknowledged and stored but no drain runs (as when every worker is busy)."""
    redis_is_down(app)
    yield
    app.extensions["quanyi.jobs"] = jobs.InlineRunner(app)


def connected(shop: Shop, *, keys: int = 30, purchase_limit: int | None = None) -> tuple[int, str]:
    with shop.bound():
        plan = f.card_plan(3990, keys=keys)
        if purchase_limit is not None:
            plan.purchase_limit = purchase_limit
            db.session.commit()
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        return channel.id, channel.public_id


def drained(app: Flask, shop: Shop) -> int:
    """Let a worker drain the tenant's inbox now (its jobs run inline again)."""
    app.extensions["quanyi.jobs"] = jobs.InlineRunner(app)
    return drain_inbox(shop.tenant.id)


def orders_in_order(shop: Shop, channel_id: int) -> list[tuple[str, str]]:
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        found = db.session.scalars(
            select(Order).where(Order.channel == channel.public_id).order_by(Order.paid_at, Order.id)
        )
        return [(o.external_id, o.status) for o in found]


def inbox_statuses(shop: Shop, channel_id: int) -> list[str]:
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        return [row.status for row in f.inbox_of(channel)]


def test_a_customers_ten_orders_in_one_batch_against_a_limit_of_3_fulfil_3_and_hold_7(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None
) -> None:
    channel_id, public_id = connected(shop, purchase_limit=3)
    for n in range(10):
        f.shopify(f.shopify_order(6100 + n, email="burst@example.com")).post(client, f"/hooks/{public_id}")
    assert inbox_statuses(shop, channel_id) == ["pending"] * 10

    assert drained(app, shop) == 10
    statuses = orders_in_order(shop, channel_id)
    assert statuses == [(str(6100 + n), "fulfilled" if n < 3 else "held") for n in range(10)]
    assert inbox_statuses(shop, channel_id) == ["processed"] * 10
    with shop.bound():
        held = db.session.scalars(select(Order.hold_reason).where(Order.status == "held")).all()
        assert all(reason and "Purchase limit" in reason for reason in held)
        customers = db.session.scalars(select(Order.customer_id).distinct()).all()
        assert len(customers) == 1  # one customer, found once for the whole burst


def test_velocity_counts_the_batchs_earlier_orders_as_one_by_one(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None
) -> None:
    channel_id, public_id = connected(shop)
    with shop.bound():
        db.session.add(RiskRule(kind="orders_per_customer", threshold=2, window_minutes=60, active=True))
        db.session.commit()
    for n in range(5):
        f.shopify(f.shopify_order(6200 + n, email="fast@example.com")).post(client, f"/hooks/{public_id}")
    other = f.shopify_order(6299, email="other@example.com")
    other["customer"]["id"] = 100  # another Shopify customer
    f.shopify(other).post(client, f"/hooks/{public_id}")

    drained(app, shop)
    assert orders_in_order(shop, channel_id) == [
        ("6200", "fulfilled"),
        ("6201", "fulfilled"),
        ("6202", "held"),
        ("6203", "held"),
        ("6204", "held"),
        ("6299", "fulfilled"),
    ]


def test_a_refund_in_the_same_batch_as_its_payment_applies_after_it(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None
) -> None:
    channel_id, public_id = connected(shop)
    f.shopify(f.shopify_order(6300)).post(client, f"/hooks/{public_id}")
    f.shopify(f.shopify_order(6301)).post(client, f"/hooks/{public_id}")
    refund = {
        "id": 8830,
        "order_id": 6300,
        "note": "changed mind",
        "transactions": [{"kind": "refund", "status": "success", "amount": "39.90", "currency": "CNY"}],
    }
    f.shopify(refund, topic="refunds/create").post(client, f"/hooks/{public_id}")

    drained(app, shop)
    assert sorted(orders_in_order(shop, channel_id)) == [("6300", "refunded"), ("6301", "fulfilled")]
    assert inbox_statuses(shop, channel_id) == ["processed"] * 3
    with shop.bound():
        refunded = db.session.scalars(select(Order.id).where(Order.external_id == "6300")).one()
        assert [g.status for g in f.grants_of(refunded)] == ["revoked"]


def test_an_unknown_sku_in_a_batch_is_held_and_the_others_are_fulfilled(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None
) -> None:
    channel_id, public_id = connected(shop)
    f.shopify(f.shopify_order(6400)).post(client, f"/hooks/{public_id}")
    f.shopify(f.shopify_order(6401, sku="NOT-MAPPED", variant_id=1)).post(client, f"/hooks/{public_id}")
    f.shopify(f.shopify_order(6402)).post(client, f"/hooks/{public_id}")

    drained(app, shop)
    assert orders_in_order(shop, channel_id) == [("6400", "fulfilled"), ("6402", "fulfilled")]
    assert inbox_statuses(shop, channel_id) == ["processed", "held", "processed"]


def test_a_batch_that_fails_to_write_is_processed_one_by_one(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order the batch cannot write (here: one created meanwhile by another worker) blocks nobody."""
    channel_id, public_id = connected(shop)
    for n in range(4):
        f.shopify(f.shopify_order(6500 + n)).post(client, f"/hooks/{public_id}")
    with shop.bound():
        rival = db.session.scalars(select(Channel.public_id).where(Channel.id == channel_id)).one()
    known = drain._orders_known

    def created_meanwhile(payments: Any) -> Any:
        found = known(payments)
        with shop.bound():  # another worker creates order 6502 between our check and our write
            from orders import services

            request = services.OrderRequest(
                channel=rival,
                external_id="6502",
                source="channel",
                customer=services.CustomerInfo("rival@example.com"),
                lines=[services.LineRequest(_plan_id(shop))],
                paid=True,
            )
            services.create_order(request)
        return found

    monkeypatch.setattr(drain, "_orders_known", created_meanwhile)
    drained(app, shop)
    assert sorted(orders_in_order(shop, channel_id)) == [(str(6500 + n), "fulfilled") for n in range(4)]
    assert inbox_statuses(shop, channel_id) == ["processed"] * 4
    with shop.bound():
        assert len(db.session.scalars(select(Grant.card_key_id)).all()) == 4


def _plan_id(shop: Shop) -> int:
    from catalog.models import Plan

    return db.session.scalars(select(Plan.id)).one()


class Recorder(jobs.JobRunner):
    """A queue that keeps the jobs it is given (as Redis would) without running them."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.specs: list[jobs.JobSpec] = []

    def submit(self, spec: jobs.JobSpec) -> None:
        self.specs.append(spec)


def test_a_batch_costs_a_few_dozen_statements_and_queues_one_job_per_side_effect(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None
) -> None:
    channel_id, public_id = connected(shop, keys=60)
    for n in range(50):
        f.shopify(f.shopify_order(6600 + n, email=f"buyer{n}@example.com")).post(
            client, f"/hooks/{public_id}"
        )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    queue = Recorder(app)
    app.extensions["quanyi.jobs"] = queue
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert drain_inbox(shop.tenant.id) == 50
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert [s for _e, s in orders_in_order(shop, channel_id)] == ["fulfilled"] * 50
    from collections import Counter

    kinds = Counter(" ".join(s.split()[:3])[:70] for s in statements).most_common()
    assert len(statements) < 50, f"{len(statements)} statements for 50 orders: {kinds}"
    assert sorted(spec.func_path for spec in queue.specs) == [
        "orders.subscriptions.tasks.start_subscriptions",  # the plan renews: one job for the batch
        "tenants.outbox.send_job",  # the 50 delivery mails: one job
    ]


def test_the_batch_sends_its_delivery_mails_with_one_job(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_id, public_id = connected(shop)
    for n in range(6):
        order = f.shopify_order(6700 + n, email=f"mail{n}@example.com")
        f.shopify(order).post(client, f"/hooks/{public_id}")
    queued: list[jobs.JobSpec] = []
    runner = jobs.InlineRunner(app)
    original = runner.submit

    def recording(spec: jobs.JobSpec) -> None:
        queued.append(spec)
        original(spec)

    monkeypatch.setattr(runner, "submit", recording)
    app.extensions["quanyi.jobs"] = runner
    drain_inbox(shop.tenant.id)
    mail_jobs = [spec.args for spec in queued if spec.func_path == "tenants.outbox.send_job"]
    assert len(mail_jobs) == 1 and len(mail_jobs[0][2]) == 6
    with shop.bound():
        assert {d.status for d in db.session.scalars(select(Delivery))} == {"sent"}


def test_a_backordered_channel_order_is_announced_fulfilled_once_when_its_key_arrives(
    app: Flask,
    client: FlaskClient,
    shop: Shop,
    receiver: Receiver,  # noqa: F811
) -> None:
    from catalog.models import Right
    from integrations import outbound
    from orders.fulfilment import fill_backorders
    from tests.catalog import factories as catalog_factories

    channel_id, public_id = connected(shop, keys=1)
    f.shopify(f.shopify_order(6800)).post(client, f"/hooks/{public_id}")  # takes the only key
    with shop.bound():
        outbound.create_endpoint(receiver.url, ["order.fulfilled"])
    f.shopify(f.shopify_order(6801)).post(client, f"/hooks/{public_id}")
    assert orders_in_order(shop, channel_id) == [("6800", "fulfilled"), ("6801", "backordered")]
    assert receiver.received == []  # nothing is fulfilled yet: nothing announced

    with shop.bound():
        right = db.session.scalars(select(Right)).one()
        catalog_factories.import_keys(right, count=1)
        fill_backorders(right.id)
    assert orders_in_order(shop, channel_id) == [("6800", "fulfilled"), ("6801", "fulfilled")]
    announced = [json.loads(body) for _headers, body in receiver.received]
    assert [(a["type"], a["data"]["external_id"], a["data"]["status"]) for a in announced] == [
        ("order.fulfilled", "6801", "fulfilled")
    ]


def test_a_burst_flagged_meanwhile_by_another_worker_does_not_fail_the_batch(
    app: Flask, client: FlaskClient, shop: Shop, stored_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orders.risk import rules
    from orders.risk.models import RiskFlag

    channel_id, public_id = connected(shop)
    with shop.bound():
        db.session.add(RiskRule(kind="orders_per_plan", threshold=2, window_minutes=60, active=True))
        db.session.commit()
    for n in range(5):
        order = f.shopify_order(6900 + n, email=f"sale{n}@example.com")
        order["customer"]["id"] = 300 + n
        f.shopify(order).post(client, f"/hooks/{public_id}")
    real = rules.is_flagged

    def flagged_meanwhile(dedupe_key: str) -> bool:
        found = real(dedupe_key)  # not yet: another worker flags it right after this check
        plan_id = int(dedupe_key.split(":")[1])
        db.session.add(RiskFlag(kind="plan_burst", dedupe_key=dedupe_key, reason="theirs", plan_id=plan_id))
        db.session.flush()
        return found

    monkeypatch.setattr(rules, "is_flagged", flagged_meanwhile)
    drained(app, shop)
    assert [s for _e, s in orders_in_order(shop, channel_id)] == ["fulfilled"] * 5  # in one batch, none held
    assert inbox_statuses(shop, channel_id) == ["processed"] * 5
    with shop.bound():
        assert db.session.scalars(select(RiskFlag.reason)).all() == ["theirs"]  # one flag, not two
