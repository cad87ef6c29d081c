"""The webhook endpoint under a flash sale: what it remembers of a channel, and the one drain it starts."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.exc import DataError

from integrations import channels
from integrations.adapters.base import Envelope
from integrations.channels import ChannelSettings
from integrations.inbound import store, targets
from integrations.models import Channel
from saas import jobs
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.conftest import jobs_through_test_redis
from tests.factories import Shop
from tests.integrations import factories as f
from tests.integrations.test_inbox_reliability import connected, fulfilled, statuses


def pause(shop: Shop, channel_id: int) -> None:
    """Pause the channel through the back office (this process)."""
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        channels.update_channel(channel, ChannelSettings(name=channel.name, status="paused"))


def test_a_paused_channel_refuses_deliveries_at_once_and_takes_them_again_when_resumed(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id = connected(shop)
    assert f.shopify(f.shopify_order(6100)).post(client, f"/hooks/{public_id}").status_code == 200
    pause(shop, channel_id)
    refused = f.shopify(f.shopify_order(6101)).post(client, f"/hooks/{public_id}")
    assert refused.status_code == 503 and refused.json["code"] == "channel_paused"
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        channels.update_channel(channel, ChannelSettings(name=channel.name, status="active"))
    assert f.shopify(f.shopify_order(6101)).post(client, f"/hooks/{public_id}").status_code == 200
    assert fulfilled(shop, channel_id) == ["6100", "6101"]


def test_a_channel_paused_by_another_server_process_is_refused_within_the_target_seconds(
    app: Flask, client: FlaskClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel_id, public_id = connected(shop)
    assert f.shopify(f.shopify_order(6200)).post(client, f"/hooks/{public_id}").status_code == 200
    with shop.bound():  # another process pauses it: this one is not told
        db.session.execute(update(Channel).where(Channel.id == channel_id).values(status="paused"))
        db.session.commit()
    assert f.shopify(f.shopify_order(6201)).post(client, f"/hooks/{public_id}").status_code == 200
    later = targets.time.monotonic() + app.config["WEBHOOK_TARGET_SECONDS"] + 0.1
    monkeypatch.setattr(targets.time, "monotonic", lambda: later)
    assert f.shopify(f.shopify_order(6202)).post(client, f"/hooks/{public_id}").status_code == 503


def test_an_unknown_channel_is_not_remembered(client: FlaskClient, shop: Shop) -> None:
    """A 404 for a URL must not stick once the channel exists (and must not fill memory)."""
    assert f.shopify(f.shopify_order(6300)).post(client, "/hooks/shopify_notyetthere").status_code == 404
    assert targets.lookup("shopify_notyetthere") is None


@pytest.mark.postgres
def test_a_burst_of_one_customer_queues_one_drain_that_fulfils_every_order(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection: Any = Redis.from_url(jobs_through_test_redis(app))
    queue = Queue("integrations", connection=connection)
    queue.empty()
    connection.delete(jobs.waiting_key(f"drain-inbox:{shop.tenant.id}"))
    channel_id, public_id = connected(shop)
    answers = [f.shopify(f.shopify_order(6400 + n)).post(client, f"/hooks/{public_id}") for n in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    jobs.flush(app)  # what this process handed to its enqueuer thread is on the queue
    assert queue.count == 1  # one drain for the whole burst, not one job per delivery
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert statuses(shop, channel_id) == ["processed"] * 8
    assert fulfilled(shop, channel_id) == [str(6400 + n) for n in range(8)]
    with shop.bound():  # drained in parallel lanes, the customer's orders still make one customer
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        assert len({order.customer_id for order in f.orders_of(channel)}) == 1
    # The drain has started (and finished): the next delivery needs, and gets, a drain of its own.
    assert f.shopify(f.shopify_order(6408)).post(client, f"/hooks/{public_id}").status_code == 200
    jobs.flush(app)
    assert queue.count == 1


def test_deliveries_to_two_shops_in_turn_are_each_stored_as_their_own(
    client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    """On PostgreSQL the endpoint's connection switches its row-level security tenant between them."""
    ours, theirs = connected(shop), connected(other_shop)
    for n in range(3):
        for public_id in (ours[1], theirs[1]):
            answer = f.shopify(f.shopify_order(6500 + n)).post(client, f"/hooks/{public_id}")
            assert answer.status_code == 200
    assert fulfilled(shop, ours[0]) == ["6500", "6501", "6502"]
    assert fulfilled(other_shop, theirs[0]) == ["6500", "6501", "6502"]


def test_the_same_delivery_five_times_at_once_makes_one_order_and_counts_four_duplicates(
    app: Flask, shop: Shop
) -> None:
    channel_id, public_id = connected(shop)
    delivery = f.shopify(f.shopify_order(6600), webhook_id="sent-five-times-at-once")
    start = threading.Barrier(5)
    answers: list[Any] = []

    def send() -> None:
        with app.app_context():  # a sender's own, as a platform's delivery workers are their own
            client = app.test_client()
            start.wait(timeout=10)
            answers.append(delivery.post(client, f"/hooks/{public_id}"))
            db.session.remove()

    db.session.commit()

    senders = [threading.Thread(target=send) for _ in range(5)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30)
    assert [a.status_code for a in answers] == [200] * 5
    assert sorted(a.json["duplicate"] for a in answers) == [False, True, True, True, True]
    assert len({a.json["received"] for a in answers}) == 1  # every answer names the one stored row
    assert fulfilled(shop, channel_id) == ["6600"]
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        (row,) = f.inbox_of(channel)
        assert row.duplicates == 4


def test_the_endpoint_answers_wrong_methods_and_paths_in_json_and_leaves_pages_to_flask(
    client: FlaskClient, shop: Shop
) -> None:
    _channel_id, public_id = connected(shop)
    browsed = client.get(f"/hooks/{public_id}")
    assert browsed.status_code == 405 and browsed.headers["Allow"] == "POST"
    assert browsed.json["code"] == "method_not_allowed"
    deeper = f.shopify(f.shopify_order(6900)).post(client, f"/hooks/{public_id}/extra")
    assert deeper.status_code == 404 and deeper.json["code"] == "not_found"
    assert client.get("/login").status_code == 200  # everything else is still the back office


def test_a_delivery_that_fails_unexpectedly_is_answered_500_and_not_acknowledged(
    client: FlaskClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel_id, public_id = connected(shop)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the inbox is unwell")

    monkeypatch.setattr("integrations.inbound.store.new_id", broken)
    failed = f.shopify(f.shopify_order(6950)).post(client, f"/hooks/{public_id}")
    assert failed.status_code == 500 and failed.json["code"] == "internal_error"
    assert statuses(shop, channel_id) == []
    monkeypatch.undo()
    assert f.shopify(f.shopify_order(6950)).post(client, f"/hooks/{public_id}").status_code == 200
    assert fulfilled(shop, channel_id) == ["6950"]


def test_a_delivery_is_stored_exactly_as_it_was_sent(client: FlaskClient, shop: Shop) -> None:
    """Support reads the inbox and a replay parses it again: the raw UTF-8 body byte for byte, and when."""
    channel_id, public_id = connected(shop)
    body = json.dumps(f.shopify_order(6970), ensure_ascii=False).encode()
    assert "影音畅享包".encode() in body
    sent_at = dt.datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=dt.UTC)
    with frozen_time(sent_at):
        assert f.shopify({}, raw=body).post(client, f"/hooks/{public_id}").status_code == 200
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        (row,) = f.inbox_of(channel)
        assert row.body == body
        assert row.headers["x-shopify-topic"] == "orders/paid" and row.api_version == "2025-07"
        assert row.received_at == sent_at and row.external_order_id == "6970"
    assert fulfilled(shop, channel_id) == ["6970"]


@pytest.mark.postgres
def test_a_row_the_database_refuses_raises_its_error_and_the_next_one_is_stored(
    app: Flask, shop: Shop, on_postgres: None
) -> None:
    """The store raises what the database refused, stores the next delivery, and counts its copy."""
    channel_id, _public_id = connected(shop)
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None

        def stored(dedupe_key: str) -> tuple[int | None, bool]:
            envelope = Envelope("orders/paid", dedupe_key, "2025-07", "1")
            return store.store(channel, envelope, {}, b"{}", "application/json")

        with pytest.raises(DataError):
            stored("x" * 201)
        db.session.rollback()
        first_id, new = stored("shopify:fine")
        assert new and first_id is not None
        assert stored("shopify:fine") == (first_id, False)
        (row,) = f.inbox_of(channel)
        assert row.duplicates == 1
    assert statuses(shop, channel_id) == ["pending"]
