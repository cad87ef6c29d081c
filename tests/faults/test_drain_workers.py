"""The batch drain of the channel inbox on PostgreSQL, with real worker processes.

- Several workers draining the same inbox at once share it (`FOR UPDATE SKIP LOCKED`): every order is
  created and fulfilled exactly once and no key is in two grants.
- A worker SIGKILLed in the middle of a batch leaves nothing half done: a delivery is processed with its
  order, grants, events and audit rows, or not at all (still claimed, its lease lapses); the next drain
  finishes the work.
"""

from __future__ import annotations

import datetime as dt
import json
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
from sqlalchemy import func, insert, select

from integrations.inbound import inbox
from integrations.models import InboxDelivery
from integrations.tasks import drain_inbox
from orders.models import Grant, Order, OrderEvent
from saas.config import sqlalchemy_url
from saas.extensions import db
from saas.ids import new_id
from saas.timeutil import frozen_time, utcnow
from tenants.models import AuditEvent
from tests.factories import Shop
from tests.faults.conftest import require_services
from tests.faults.test_killed_import import cli_environment
from tests.integrations import factories as f
from tests.orders.factories import keys_in_two_live_grants

WORKER_NAME = "quanyi-drain-test"  # the workers' application_name in pg_stat_activity

WORKER = textwrap.dedent(
    """
    import sys

    from integrations.tasks import drain_inbox
    from saas import jobs
    from quanyi.app import create_app


    class Queued(jobs.JobRunner):  # as Redis: the mail and helper-drain jobs wait for other workers
        def submit(self, spec):
            pass


    url, tenant_id, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    config = {"ENV_NAME": "testing", "DATABASE_URL": url}
    app = create_app({**config, "MAIL_DIR": folder + "/mail", "FILES_DIR": folder + "/files"})
    app.extensions["quanyi.jobs"] = Queued(app)
    with app.app_context():
        print(drain_inbox(tenant_id), flush=True)
    """
)


def shopify_channel(keys: int) -> tuple[int, str]:
    """A Shopify channel selling a one-off card-key plan with `keys` keys; returns (channel id, public id)."""
    plan = f.card_plan(3990, keys=keys)
    plan.renewable = False
    db.session.commit()
    channel = f.make_channel("shopify")
    f.map_sku(channel, "VIP-MONTH", plan)
    return channel.id, channel.public_id


def stored_payments(tenant_id: int, channel_id: int, count: int) -> None:
    """Store `count` paid Shopify orders of distinct new customers in the inbox, as the endpoint does."""
    first = utcnow() - dt.timedelta(seconds=10)
    rows = []
    for n in range(count):
        payload = f.shopify_order(900_000 + n, email=f"buyer{n}@example.com")
        payload["customer"]["id"] = 700_000 + n
        rows.append(
            {
                "tenant_id": tenant_id,
                "id": new_id(),
                "channel_id": channel_id,
                "dedupe_key": f"drain-test-{n}",
                "topic": "orders/paid",
                "status": "pending",
                "headers": {"X-Shopify-Topic": "orders/paid"},
                "body": json.dumps(payload).encode(),
                "content_type": "application/json",
                "external_order_id": str(900_000 + n),
                "received_at": first + dt.timedelta(microseconds=n),
            }
        )
    for at in range(0, count, 1000):
        db.session.execute(insert(InboxDelivery), rows[at : at + 1000])
    db.session.commit()


def start_worker(app: Flask, tenant_id: int, tmp_path: Path, script: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(script), app.config["DATABASE_URL"], str(tenant_id), str(tmp_path)],
        env={**cli_environment(app, tmp_path), "PGAPPNAME": WORKER_NAME},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_mid_drain(process: subprocess.Popen[bytes], owner: sa.Engine, past: int) -> None:
    """SIGKILL the worker inside a batch that has written, once `past` deliveries are processed."""

    def one(query: str) -> int:
        with owner.connect() as conn:
            return int(conn.execute(sa.text(query), {"name": WORKER_NAME}).scalar_one())

    in_batch = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND backend_xid IS NOT NULL"
    )
    done = "SELECT count(*) FROM webhook_inbox WHERE status = 'processed' AND :name <> ''"
    deadline = time.monotonic() + 120
    while not (one(done) >= past and one(in_batch)):
        if process.poll() is not None:
            stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
            pytest.fail(f"the worker ended (code {process.returncode}) before it could be killed: {stderr}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker never got past {past} deliveries")
        time.sleep(0.002)  # polling another process's progress, not waiting on the app
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    backends = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
    while one(backends) and time.monotonic() < deadline:  # the server rolls the batch back
        time.sleep(0.01)
    assert one(backends) == 0


def inbox_counts() -> dict[str, int]:
    rows = db.session.execute(select(InboxDelivery.status, func.count()).group_by(InboxDelivery.status))
    return {status: int(n) for status, n in rows}


def whole_orders() -> None:
    """Every processed delivery has its order, and every order its grant, events and audit rows."""
    processed = db.session.execute(
        select(InboxDelivery.order_id).where(InboxDelivery.status == "processed")
    ).scalars()
    order_ids = {int(order_id) for order_id in processed}
    orders = {o.id: o.status for o in db.session.scalars(select(Order))}
    assert set(orders) == order_ids  # no order without its settled delivery, and the reverse
    grants = dict(db.session.execute(select(Grant.order_id, func.count()).group_by(Grant.order_id)).all())
    assert all(grants.get(order_id) == 1 for order_id in orders)  # one unit, one right: one grant
    events = dict(
        db.session.execute(select(OrderEvent.order_id, func.count()).group_by(OrderEvent.order_id)).all()
    )
    assert all(events.get(order_id, 0) >= 3 for order_id in orders)  # pending, paid, fulfilled/backordered
    audited = set(
        db.session.scalars(
            select(AuditEvent.object_id).where(AuditEvent.action == "order.fulfilled").distinct()
        )
    )
    assert {str(order_id) for order_id in orders} <= audited
    assert set(orders.values()) <= {"fulfilled", "backordered"}


def delivered_keys() -> tuple[int, int]:
    row = db.session.execute(
        select(func.count(), func.count(Grant.card_key_id.distinct())).where(
            Grant.status == "delivered", Grant.card_key_id.is_not(None)
        )
    ).one()
    return int(row[0]), int(row[1])


@pytest.mark.postgres
def test_three_workers_draining_one_inbox_fulfil_each_order_once_and_no_key_twice(
    app: Flask, shop: Shop, tmp_path: Path
) -> None:
    require_services()
    orders, keys = 1_500, 1_200
    with shop.bound():
        channel_id, _public_id = shopify_channel(keys)
        stored_payments(shop.tenant.id, channel_id, orders)
    script = tmp_path / "drain_worker.py"
    script.write_text(WORKER, encoding="utf-8")
    workers = [start_worker(app, shop.tenant.id, tmp_path, script) for _ in range(3)]
    drained = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-2000:]
        drained.append(int(out.decode().split()[-1]))
    assert sum(drained) == orders  # each delivery claimed by one worker
    assert sum(1 for n in drained if n) >= 2  # the work was shared

    with shop.bound():
        db.session.rollback()
        assert inbox_counts() == {"processed": orders}
        whole_orders()
        statuses = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
        assert statuses == {"fulfilled": keys, "backordered": orders - keys}
        external = db.session.scalar(select(func.count(Order.external_id.distinct())))
        assert external == orders
        assert keys_in_two_live_grants() == 0
        assert delivered_keys() == (keys, keys)


@pytest.mark.postgres
def test_a_worker_killed_mid_batch_leaves_no_half_done_order_and_the_next_drain_finishes(
    app: Flask, shop: Shop, tmp_path: Path
) -> None:
    require_services()
    orders, keys = 3_000, 2_500
    with shop.bound():
        channel_id, _public_id = shopify_channel(keys)
        stored_payments(shop.tenant.id, channel_id, orders)
    script = tmp_path / "drain_worker.py"
    script.write_text(WORKER, encoding="utf-8")
    owner = sa.create_engine(sqlalchemy_url(app.config["TEST_OWNER_DATABASE_URL"]))
    try:
        worker = start_worker(app, shop.tenant.id, tmp_path, script)
        kill_mid_drain(worker, owner, orders // 5)
        assert worker.returncode == -signal.SIGKILL
    finally:
        owner.dispose()

    with shop.bound():
        db.session.rollback()  # read what the worker committed
        counts = inbox_counts()
        assert 0 < counts.get("processed", 0) < orders
        assert set(counts) <= {"processed", "processing", "pending"}
        whole_orders()  # nothing half done
        assert keys_in_two_live_grants() == 0

    with frozen_time(utcnow() + inbox.LEASE + dt.timedelta(seconds=1)), shop.bound():
        while drain_inbox(shop.tenant.id):  # the killed batch's lease has lapsed: it is taken again
            pass  # (a drain hands over after its time budget: the next one goes on)
        assert inbox_counts() == {"processed": orders}
        whole_orders()
        statuses = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
        assert statuses == {"fulfilled": keys, "backordered": orders - keys}
        assert keys_in_two_live_grants() == 0
        assert delivered_keys() == (keys, keys)
