"""The inbox when things go wrong: Redis down during a burst, processing failures, retries, dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from saas import jobs
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tests.conftest import jobs_through_test_redis
from tests.factories import Shop, login
from tests.integrations import factories as f


def connected(shop: Shop) -> tuple[int, str]:
    with shop.bound():
        plan = f.card_plan(3990, keys=30)
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        return channel.id, channel.public_id


def statuses(shop: Shop, channel_id: int) -> list[str]:
    from integrations.models import Channel

    with shop.bound():
        return sorted(r.status for r in f.inbox_of(db.session.get(Channel, (shop.tenant.id, channel_id))))  # type: ignore[arg-type]


def fulfilled(shop: Shop, channel_id: int) -> list[str]:
    from integrations.models import Channel

    with shop.bound():
        orders = f.orders_of(db.session.get(Channel, (shop.tenant.id, channel_id)))  # type: ignore[arg-type]
        return sorted(o.external_id for o in orders if o.status == "fulfilled")


def redis_is_down(app: Flask) -> None:
    """Point the app's jobs at a closed port, as when Redis is down."""
    app.config.update(JOBS_MODE="rq", REDIS_URL="redis://127.0.0.1:1/0")
    app.extensions.pop("quanyi.redis", None)
    jobs.init_app(app)


def test_with_redis_down_a_burst_is_acknowledged_and_stored_then_processed_by_the_sweep(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from integrations.tasks import process_pending_inbox_everywhere

    channel_id, public_id = connected(shop)
    redis_is_down(app)
    answers = [f.shopify(f.shopify_order(7000 + n)).post(client, f"/hooks/{public_id}") for n in range(12)]
    assert [a.status_code for a in answers] == [200] * 12
    assert statuses(shop, channel_id) == ["pending"] * 12 and fulfilled(shop, channel_id) == []

    app.extensions["quanyi.jobs"] = jobs.InlineRunner(app)  # Redis is back
    with frozen_time(utcnow() + dt.timedelta(minutes=1)):
        totals = process_pending_inbox_everywhere()
    assert totals["inbox"] == 12
    assert statuses(shop, channel_id) == ["processed"] * 12
    assert fulfilled(shop, channel_id) == [str(7000 + n) for n in range(12)]


@pytest.mark.postgres
def test_deliveries_go_through_redis_to_a_real_worker(app: Flask, client: FlaskClient, shop: Shop) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection = Redis.from_url(jobs_through_test_redis(app))
    channel_id, public_id = connected(shop)
    queue = Queue("integrations", connection=connection)
    queue.empty()
    for n in range(5):
        f.shopify(f.shopify_order(7100 + n)).post(client, f"/hooks/{public_id}")
    jobs.flush(app)
    assert statuses(shop, channel_id) == ["pending"] * 5  # waiting in Redis for a worker
    app.extensions["quanyi.jobs"] = jobs.InlineRunner(app)  # what the orders package enqueues runs here
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert statuses(shop, channel_id) == ["processed"] * 5
    assert len(fulfilled(shop, channel_id)) == 5


def test_a_failing_delivery_is_retried_with_backoff_then_dead_then_replayed(
    app: Flask, client: FlaskClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integrations.inbound import inbox
    from integrations.models import InboxDelivery
    from integrations.tasks import process_pending_inbox_everywhere

    channel_id, public_id = connected(shop)
    broken: dict[str, Any] = {"on": True}
    original = inbox.apply_delivery

    def flaky(channel: Any, row: Any) -> Any:
        if broken["on"]:
            raise ConnectionError("upstream database hiccup")
        return original(channel, row)

    def flaky_batch(batch: Any) -> Any:
        if broken["on"]:
            raise ConnectionError("upstream database hiccup")
        return original_batch(batch)

    from orders.services import PaidOrderBatch

    original_batch = PaidOrderBatch.write
    monkeypatch.setattr(inbox, "apply_delivery", flaky)  # alone
    monkeypatch.setattr(PaidOrderBatch, "write", flaky_batch)  # in a batch, which then tries it alone
    start = utcnow()
    with frozen_time(start):
        f.shopify(f.shopify_order(7200)).post(client, f"/hooks/{public_id}")
    waits = []
    moment = start
    for _attempt in range(len(inbox.RETRY_SCHEDULE)):
        with shop.bound():
            row = db.session.query(InboxDelivery).one()
            assert row.status == "failed" and "hiccup" in (row.last_error or "")
            waits.append(int((row.next_attempt_at - moment).total_seconds()))
            moment = row.next_attempt_at
        with frozen_time(moment - dt.timedelta(seconds=1)):
            process_pending_inbox_everywhere()  # not due yet: nothing happens
        with frozen_time(moment):
            process_pending_inbox_everywhere()
    assert waits == [30, 120, 600, 3600, 6 * 3600]
    assert statuses(shop, channel_id) == ["dead"]

    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/channels/dead-letters").get_data(as_text=True)
    assert "hiccup" in page
    broken["on"] = False
    with shop.bound():
        delivery_id = db.session.query(InboxDelivery).one().id
    client.post(f"/t/{shop.slug}/channels/inbox/{delivery_id}/replay")
    assert statuses(shop, channel_id) == ["processed"] and fulfilled(shop, channel_id) == ["7200"]


def test_a_rotated_secret_keeps_the_old_one_valid_for_the_overlap_only(
    client: FlaskClient, shop: Shop
) -> None:
    from integrations import channels
    from integrations.models import Channel

    channel_id, public_id = connected(shop)
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        new_secret = channels.rotate_secret(channel, overlap_hours=24)
    assert f.shopify(f.shopify_order(7300)).post(client, f"/hooks/{public_id}").status_code == 200  # old
    assert (
        f.shopify(f.shopify_order(7301), secret=new_secret).post(client, f"/hooks/{public_id}").status_code
        == 200
    )
    with frozen_time(utcnow() + dt.timedelta(hours=25)):
        assert f.shopify(f.shopify_order(7302)).post(client, f"/hooks/{public_id}").status_code == 401
        assert (
            f.shopify(f.shopify_order(7303), secret=new_secret)
            .post(client, f"/hooks/{public_id}")
            .status_code
            == 200
        )


def test_secrets_are_stored_encrypted_and_revealed_only_with_an_audit_row(
    client: FlaskClient, shop: Shop
) -> None:
    from integrations.models import Channel
    from tenants.models import AuditEvent

    channel_id, _public_id = connected(shop)
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None and f.SHOPIFY_SECRET.encode() not in bytes(
            channel.secret_ciphertext or b""
        )
        assert channel.secret_hint == "…" + f.SHOPIFY_SECRET[-4:]
    login(client, shop.members["operator"])
    assert (
        client.post(f"/t/{shop.slug}/channels/{channel_id}/secret/reveal").json["value"] == f.SHOPIFY_SECRET
    )
    login(client, shop.members["finance"])
    assert client.post(f"/t/{shop.slug}/channels/{channel_id}/secret/reveal").status_code == 403
    with shop.bound():
        assert db.session.query(AuditEvent).filter_by(action="channel.secret_revealed").count() == 1
