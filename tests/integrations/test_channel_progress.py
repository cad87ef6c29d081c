"""The channel page during a sale: how many deliveries wait, how fast they drain, how old the oldest is."""

from __future__ import annotations

import datetime as dt
import json

from flask.testing import FlaskClient

from integrations.adapters.base import Envelope
from integrations.inbound import store
from integrations.models import Channel
from integrations.tasks import drain_inbox
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.factories import Shop, login
from tests.integrations import factories as f
from tests.integrations.test_inbox_reliability import connected

SALE_STARTS = dt.datetime(2026, 11, 11, 0, 0, 0, tzinfo=dt.UTC)


def receive_without_draining(shop: Shop, channel_id: int, order_ids: range) -> None:
    """Store deliveries as the endpoint does, before any drain has run (the worker is busy elsewhere)."""
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        for number in order_ids:
            body = json.dumps(f.shopify_order(number)).encode()
            envelope = Envelope("orders/paid", f"shopify:wh-{number}", "2025-07", str(number))
            store.store(channel, envelope, {"x-shopify-topic": "orders/paid"}, body, "application/json")


def figures(client: FlaskClient, shop: Shop, channel_id: int) -> dict[str, object]:
    answer = client.get(f"/t/{shop.slug}/channels/{channel_id}/progress")
    assert answer.status_code == 200
    return dict(answer.json or {})


def test_the_channel_page_shows_the_backlog_fill_and_drain(client: FlaskClient, shop: Shop) -> None:
    channel_id, _public_id = connected(shop)
    login(client, shop.owner)
    with frozen_time(SALE_STARTS):
        receive_without_draining(shop, channel_id, range(7100, 7105))
    with frozen_time(SALE_STARTS + dt.timedelta(seconds=90)):
        page = client.get(f"/t/{shop.slug}/channels/{channel_id}").get_data(as_text=True)
        assert 'data-testid="progress-waiting">5<' in page
        assert 'data-testid="progress-oldest">2 minutes<' in page  # 90 s, rounded as people say it
        assert f"/t/{shop.slug}/channels/{channel_id}/progress" in page  # where the page refreshes from
        assert figures(client, shop, channel_id) == {
            "waiting": 5,
            "drained_last_minute": 0,
            "oldest_age_seconds": 90,
            "oldest_age": "2 minutes",
        }
        drain_inbox(shop.tenant.id)
        assert figures(client, shop, channel_id) == {
            "waiting": 0,
            "drained_last_minute": 5,
            "oldest_age_seconds": None,
            "oldest_age": "—",
        }
    with frozen_time(SALE_STARTS + dt.timedelta(minutes=3)):  # the sale is over: nothing drained lately
        assert figures(client, shop, channel_id)["drained_last_minute"] == 0


def test_the_live_figures_read_in_chinese(client: FlaskClient, shop: Shop) -> None:
    channel_id, _public_id = connected(shop)
    login(client, shop.owner)
    with frozen_time(SALE_STARTS):
        receive_without_draining(shop, channel_id, range(7200, 7202))
    with frozen_time(SALE_STARTS + dt.timedelta(seconds=45)):
        headers = {"Accept-Language": "zh-CN"}
        page = client.get(f"/t/{shop.slug}/channels/{channel_id}", headers=headers).get_data(as_text=True)
        assert "等待处理的推送" in page and "最近一分钟处理" in page and "最早一条已等待" in page
        answer = client.get(f"/t/{shop.slug}/channels/{channel_id}/progress", headers=headers)
        assert answer.json is not None and answer.json["oldest_age"] == "45秒钟"


def test_another_tenant_cannot_read_a_channels_figures(
    client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    channel_id, _public_id = connected(shop)
    login(client, other_shop.owner)
    assert client.get(f"/t/{other_shop.slug}/channels/{channel_id}/progress").status_code == 404
