"""A worker SIGKILLed in the middle of a fulfilment batch leaves no key in two grants and no half-fulfilled
order; running fulfilment again finishes the work.

The worker is its own process running `orders.fulfilment.fulfil_orders` in batches (as a fulfilment worker
does), against the test database as the app role. The test watches PostgreSQL and kills it once a quarter
of the orders are done and its connection is inside a batch that has already written (claimed orders).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import func, select

from orders.bulk import insert_objects
from orders.fulfilment import fulfil_orders
from orders.models import Customer, Grant, Order, OrderLine
from saas.config import sqlalchemy_url
from saas.extensions import db
from saas.timeutil import utcnow
from tests.factories import Shop
from tests.faults.conftest import require_services
from tests.faults.test_killed_import import cli_environment
from tests.orders.factories import Product, add_keys, key_status_counts, keys_in_two_live_grants, make_product

KEYS = 3_000
ORDERS = 4_000
BATCH = 50  # orders per transaction, as a worker drains them
WORKER_NAME = "quanyi-fulfilment-kill-test"  # the worker's application_name in pg_stat_activity

WORKER = textwrap.dedent(
    """
    import sys

    from sqlalchemy import select

    from orders.fulfilment import fulfil_orders
    from orders.models import Order
    from quanyi.app import create_app
    from saas.extensions import db
    from tenants.scoping import tenant_bound

    url, tenant_id, batch, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    config = {"ENV_NAME": "testing", "DATABASE_URL": url}
    app = create_app({**config, "MAIL_DIR": folder + "/mail", "FILES_DIR": folder + "/files"})
    with app.app_context(), tenant_bound(tenant_id):
        waiting = select(Order.id).where(Order.status == "paid").order_by(Order.paid_at, Order.id)
        paid = list(db.session.scalars(waiting))
        db.session.commit()
        for at in range(0, len(paid), batch):
            fulfil_orders(paid[at : at + batch], actor="system: fulfilment worker")
    """
)


def single_key_product() -> Product:
    """A one-off (non-renewable) plan of one card-key right with KEYS keys in stock."""
    product = make_product()
    product.plan.renewable = False
    db.session.commit()
    add_keys(product.right, KEYS)
    return product


def paid_orders(product: Product, count: int) -> list[int]:
    """Insert `count` paid, not yet fulfilled orders of one unit each, straight into the tables (fast)."""
    customer = Customer(phone="13800000000", name="Buyer")  # no email: no mail is composed
    db.session.add(customer)
    db.session.commit()
    snapshot, first_paid = product.plan.snapshot(), utcnow() - dt.timedelta(hours=1)
    orders = [
        Order(
            channel="shop",
            external_id=f"KILL-{n:05d}",
            source="api",
            customer_id=customer.id,
            status="paid",
            currency="CNY",
            total=product.plan.price,
            paid_at=first_paid + dt.timedelta(milliseconds=n),
        )
        for n in range(count)
    ]
    lines = [
        OrderLine(
            order_id=order.id,
            plan_id=product.plan.id,
            bundle_id=product.bundle.id,
            title="视频月卡 · 月卡",
            quantity=1,
            unit_price=product.plan.price,
            currency="CNY",
            total=product.plan.price,
            snapshot=snapshot,
        )
        for order in orders
    ]
    insert_objects(orders)
    insert_objects(lines)
    db.session.commit()
    return [order.id for order in orders]


def worker_in_written_batch(owner: sa.Engine) -> bool:
    """Tell whether the worker's connection is inside a transaction that has written (a claimed batch)."""
    with owner.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND backend_xid IS NOT NULL"
            ),
            {"name": WORKER_NAME},
        ).scalar_one()
    return bool(found)


def worker_backends(owner: sa.Engine) -> int:
    with owner.connect() as conn:
        found = conn.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": WORKER_NAME},
        ).scalar_one()
    return int(found)


def processed(owner: sa.Engine) -> int:
    """Orders no longer waiting to be fulfilled, as committed (the owner sees past the tenant filter)."""
    with owner.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM orders WHERE status <> 'paid'")).scalar_one())


def kill_mid_batch(process: subprocess.Popen[bytes], owner: sa.Engine, past: int) -> int:
    """SIGKILL the worker inside a batch once `past` orders are processed; return how many were then."""
    deadline = time.monotonic() + 300  # a bound for a stuck worker; a loaded CI machine is slow
    while True:
        done = processed(owner)
        if done >= past and worker_in_written_batch(owner):
            break
        if process.poll() is not None:
            stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
            pytest.fail(f"the worker ended (code {process.returncode}) before it could be killed: {stderr}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker never got past {past} orders ({done} done)")
        time.sleep(0.002)  # polling another process's progress, not waiting on the app
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    while worker_backends(owner) and time.monotonic() < deadline:  # the server rolls its batch back
        time.sleep(0.01)
    assert worker_backends(owner) == 0
    return done


def orders_by_status() -> dict[str, int]:
    rows = db.session.execute(select(Order.status, func.count()).group_by(Order.status))
    return {status: int(count) for status, count in rows}


def grant_shapes() -> dict[str, set[tuple[str, ...]]]:
    """Map each order status to the sets of grant statuses its orders hold (one tuple per order)."""
    grants: dict[int, list[str]] = {}
    for order_id, status in db.session.execute(select(Grant.order_id, Grant.status)):
        grants.setdefault(order_id, []).append(status)
    shapes: dict[str, set[tuple[str, ...]]] = {}
    for order_id, status in db.session.execute(select(Order.id, Order.status)):
        shapes.setdefault(status, set()).add(tuple(sorted(grants.get(order_id, []))))
    return shapes


def delivered_key_grants() -> tuple[int, int]:
    """Return (delivered card-key grants, distinct keys they hold)."""
    row = db.session.execute(
        select(func.count(), func.count(Grant.card_key_id.distinct())).where(
            Grant.kind == "card_key", Grant.status == "delivered", Grant.card_key_id.is_not(None)
        )
    ).one()
    return int(row[0]), int(row[1])


@pytest.mark.postgres
def test_a_worker_killed_mid_fulfilment_batch_leaves_no_double_key_nor_half_order_and_a_rerun_finishes(
    app: Flask, shop: Shop, tmp_path: Path
) -> None:
    require_services()
    with shop.bound():
        product = single_key_product()
        right_id = product.right.id
        order_ids = paid_orders(product, ORDERS)
        tenant_id = shop.tenant.id
    script = tmp_path / "fulfilment_worker.py"
    script.write_text(WORKER, encoding="utf-8")
    owner = sa.create_engine(sqlalchemy_url(app.config["TEST_OWNER_DATABASE_URL"]))
    try:
        worker = subprocess.Popen(
            [
                sys.executable,
                str(script),
                app.config["DATABASE_URL"],
                str(tenant_id),
                str(BATCH),
                str(tmp_path),
            ],
            env={**cli_environment(app, tmp_path), "PGAPPNAME": WORKER_NAME},
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        done = kill_mid_batch(worker, owner, ORDERS // 4)
        assert worker.returncode == -signal.SIGKILL
    finally:
        owner.dispose()

    with shop.bound():
        db.session.rollback()  # read what the worker committed
        statuses = orders_by_status()
        assert done <= sum(n for s, n in statuses.items() if s != "paid") < ORDERS  # some, not all
        assert set(statuses) <= {"paid", "fulfilled", "backordered"}  # nothing left `fulfilling`
        shapes = grant_shapes()
        assert shapes.get("paid", {()}) == {()}  # a paid order has no grant: claimable again
        assert shapes.get("fulfilled", {("delivered",)}) == {("delivered",)}
        assert shapes.get("backordered", {("backordered",)}) == {("backordered",)}
        assert keys_in_two_live_grants() == 0
        delivered, distinct_keys = delivered_key_grants()
        assert delivered == distinct_keys == statuses.get("fulfilled", 0)
        assert key_status_counts(right_id) == {"delivered": delivered, "available": KEYS - delivered}

        for at in range(0, ORDERS, 200):  # the worker's batches again: only still-paid orders are claimed
            fulfil_orders(order_ids[at : at + 200], actor="system: fulfilment worker")

        assert orders_by_status() == {"fulfilled": KEYS, "backordered": ORDERS - KEYS}
        assert grant_shapes() == {"fulfilled": {("delivered",)}, "backordered": {("backordered",)}}
        assert keys_in_two_live_grants() == 0
        assert delivered_key_grants() == (KEYS, KEYS)
        assert key_status_counts(right_id) == {"delivered": KEYS}
        assert db.session.scalar(select(func.count()).select_from(Grant)) == ORDERS  # one grant per order
