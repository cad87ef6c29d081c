"""Redis dies midway through a burst of webhooks: every delivery is still acknowledged, stored, processed."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient

from saas import jobs
from saas.timeutil import frozen_time, utcnow
from tests.factories import Shop
from tests.faults.conftest import PrivateRedis
from tests.integrations import factories as f
from tests.integrations.test_inbox_reliability import fulfilled, statuses

BURST = 40


def connected(shop: Shop) -> tuple[int, str]:
    """A Shopify channel selling a plan with enough card keys for the whole burst."""
    with shop.bound():
        plan = f.card_plan(3990, keys=BURST + 5)
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        return channel.id, channel.public_id


def use_redis(app: Flask, url: str) -> None:
    """Run the app's jobs through RQ on this Redis, as in production."""
    app.config.update(JOBS_MODE="rq", REDIS_URL=url)
    app.extensions.pop("quanyi.redis", None)
    jobs.init_app(app)


@pytest.mark.postgres
def test_redis_killed_midway_through_a_burst_loses_no_delivery_and_makes_one_order_each(
    app: Flask, client: FlaskClient, shop: Shop, private_redis: PrivateRedis
) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    from integrations.tasks import process_pending_inbox_everywhere

    channel_id, public_id = connected(shop)
    use_redis(app, private_redis.url)
    answers = []
    for n in range(BURST):
        if n == BURST // 2:
            private_redis.kill()  # SIGKILL: jobs queued so far are gone with it (no persistence)
        answers.append(f.shopify(f.shopify_order(9300 + n)).post(client, f"/hooks/{public_id}"))
    assert [a.status_code for a in answers] == [200] * BURST
    assert statuses(shop, channel_id) == ["pending"] * BURST  # every delivery is stored, none processed
    assert fulfilled(shop, channel_id) == []

    private_redis.start()  # back on the same port, empty
    use_redis(app, private_redis.url)
    connection = Redis.from_url(private_redis.url)
    # Another delivery of an order already received is acknowledged and makes no second order.
    again = f.shopify(f.shopify_order(9300)).post(client, f"/hooks/{public_id}")
    assert again.status_code == 200
    app.extensions["quanyi.jobs"] = jobs.InlineRunner(app)  # what processing enqueues runs here
    with frozen_time(utcnow() + dt.timedelta(minutes=1)):
        process_pending_inbox_everywhere()
    SimpleWorker([Queue("integrations", connection=connection)], connection=connection).work(burst=True)
    assert statuses(shop, channel_id) == ["processed"] * (BURST + 1)
    assert fulfilled(shop, channel_id) == sorted(str(9300 + n) for n in range(BURST))  # one order each
