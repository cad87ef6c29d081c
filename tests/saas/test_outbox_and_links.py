"""Links built from PUBLIC_BASE_URL only; the outbox: records sent once, a lost job repaired by the sweep."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders.models import Delivery
from saas import jobs
from saas import outbox as outbox_lib
from saas.extensions import db
from saas.outbox import PlatformMessage
from saas.timeutil import utcnow
from tenants import outbox as tenant_outbox
from tenants.models import OutboxMessage
from tests.factories import Outbox, Shop, login
from tests.orders.factories import add_keys, make_product, place_order

LINK = re.compile(r"https?://\S+")


def links_in(mail: Any) -> list[str]:
    return LINK.findall(Outbox.body(mail))


@pytest.fixture
def job_log(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[jobs.JobSpec]:
    """Every job the app submits, as queued (payloads included), still run inline."""
    runner = app.extensions["quanyi.jobs"]
    seen: list[jobs.JobSpec] = []
    submit = runner.submit

    def recording(spec: jobs.JobSpec) -> None:
        seen.append(spec)
        submit(spec)

    monkeypatch.setattr(runner, "submit", recording)
    return seen


@pytest.fixture
def mail_queue_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Jobs for the mail queue are lost (Redis down as they are queued); other jobs run."""
    runner = app.extensions["quanyi.jobs"]
    submit = runner.submit

    def losing(spec: jobs.JobSpec) -> None:
        if spec.queue == "mail":
            raise ConnectionError("Redis is down")
        submit(spec)

    monkeypatch.setattr(runner, "submit", losing)
    yield


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("header", ["Host", "X-Forwarded-Host"])
def test_a_reset_request_with_a_hostile_host_links_to_public_base_url(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox, header: str
) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://rights.example.cn"
    client.post("/password/forgot", data={"email": shop.owner.email}, headers={header: "evil.example"})
    (mail,) = outbox.to(shop.owner.email)
    (link,) = links_in(mail)
    assert link.startswith("https://rights.example.cn/password/reset/")
    assert "evil.example" not in Outbox.body(mail)


def test_a_mail_sent_from_a_job_links_absolutely_and_the_link_opens(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    app.config["SERVER_NAME"] = None  # as in production: only PUBLIC_BASE_URL knows the address
    with shop.bound():
        product = make_product()
        place_order(product, "JOB-1", paid=True)  # no stock: backordered
        assert outbox.to("buyer@example.test") == []
        add_keys(product.right, 1)
        right_id, tenant_id = product.right.id, shop.tenant.id
    jobs.enqueue("orders.tasks.fill_backorders", tenant_id, right_id, queue="fulfilment")
    (mail,) = outbox.to("buyer@example.test")
    (link,) = links_in(mail)
    assert link.startswith("http://quanyi.test/my/")
    page = client.get(link, follow_redirects=True)
    assert page.status_code == 200 and "视频月卡" in page.get_data(as_text=True)


def test_the_webhook_url_a_setup_page_shows_is_on_public_base_url(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from tests.integrations.factories import make_channel

    app.config["PUBLIC_BASE_URL"] = "https://rights.example.cn/base"
    with shop.bound():
        channel = make_channel("shopify")
        channel_id, public_id = channel.id, channel.public_id
    login(client, shop.owner)
    page = client.get(
        f"/t/{shop.slug}/channels/{channel_id}", headers={"X-Forwarded-Host": "evil.example"}
    ).get_data(as_text=True)
    assert f"https://rights.example.cn/base/hooks/{public_id}" in page
    assert "evil.example" not in page


def test_production_refuses_to_start_without_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from quanyi.app import create_app
    from saas.config import ConfigError

    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        create_app(
            {
                "ENV_NAME": "production",
                "SECRET_KEY": "x",
                "QUANYI_MASTER_KEY": "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmchISE=",
                "DATABASE_URL": "postgresql://db/quanyi",
                "REDIS_URL": "redis://r",
                "SMTP_URL": "smtp://m",
            }
        )
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        create_app({"ENV_NAME": "development", "PUBLIC_BASE_URL": "javascript:alert(1)"})


# ---------------------------------------------------------------- tokens never queued


def test_no_job_payload_holds_a_token(
    client: FlaskClient, shop: Shop, outbox: Outbox, job_log: list[jobs.JobSpec]
) -> None:
    client.post("/password/forgot", data={"email": shop.owner.email})
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        place_order(product, "TOK-1", paid=True)
    tokens = [
        link.rsplit("/", 1)[-1]
        for mail in outbox.messages()
        for link in links_in(mail)
        if "/password/reset/" in link or "/my/" in link
    ]
    assert len(tokens) == 2
    mail_jobs = [spec for spec in job_log if spec.queue == "mail"]
    assert mail_jobs, "the mails were sent by jobs"
    payloads = json.dumps([[spec.args, spec.kwargs] for spec in job_log], default=str)
    for token in tokens:
        assert token not in payloads
    with shop.bound():
        stored = json.dumps([m.body for m in db.session.scalars(select(OutboxMessage))])
    stored += json.dumps([m.body for m in db.session.scalars(select(PlatformMessage))])
    assert not any(token in stored for token in tokens)


# ---------------------------------------------------------------- the outbox


def test_a_lost_mail_job_is_repaired_by_the_sweep_exactly_once(
    shop: Shop, outbox: Outbox, mail_queue_down: None
) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 3)
        orders = [
            place_order(product, f"LOST-{n}", paid=True, email=f"b{n}@example.test").external_id
            for n in range(3)
        ]
        records = list(db.session.scalars(select(Delivery)))
        assert [r.status for r in records] == ["queued"] * 3
    assert outbox.messages() == []
    tenant_outbox.sweep_everywhere(utcnow())  # within the grace period: a job may still be on its way
    assert outbox.messages() == []
    later = utcnow() + dt.timedelta(minutes=5)
    assert tenant_outbox.sweep_everywhere(later)["sent"] == 3
    assert tenant_outbox.sweep_everywhere(later)["sent"] == 0
    for n, external_id in enumerate(orders):
        (mail,) = outbox.to(f"b{n}@example.test")
        assert external_id in str(mail["Subject"])
    with shop.bound():
        records = list(db.session.scalars(select(Delivery)))
        assert {(r.status, r.attempts) for r in records} == {("sent", 1)}


def test_a_record_is_sent_once_however_often_it_is_sent(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "ONCE-1", paid=True)
        (record,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order.id))
        assert outbox_sent_twice(record.id) == 0
    assert len(outbox.to("buyer@example.test")) == 1


def outbox_sent_twice(record_id: int) -> int:
    return outbox_lib.send_records("delivery", [record_id]) + outbox_lib.send_records("delivery", [record_id])


def test_a_failing_provider_leaves_attempts_and_the_error_then_fails_and_can_be_resent(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    app.config["SMTP_URL"] = "smtp://127.0.0.1:9"  # nothing listens: connection refused
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order_id = place_order(product, "FAIL-1", paid=True).id
        (record,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert (record.status, record.attempts) == ("queued", 1)
        assert "ConnectionRefused" in record.last_error
    moment = utcnow()
    for _ in range(app.config["OUTBOX_MAX_ATTEMPTS"]):
        moment += dt.timedelta(hours=7)
        tenant_outbox.sweep_everywhere(moment)
    with shop.bound():
        db.session.expire_all()
        (record,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert record.status == "failed" and record.attempts == app.config["OUTBOX_MAX_ATTEMPTS"]
    login(client, shop.members["support"])
    page = client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)
    assert 'data-delivery-status="failed"' in page and "ConnectionRefused" in page
    app.config["SMTP_URL"] = None
    assert (
        client.post(f"/t/{shop.slug}/orders/{order_id}/resend", data={"reason": "fixed"}).status_code == 302
    )
    assert len(outbox.to("buyer@example.test")) == 1
    page = client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)
    assert 'data-delivery-status="sent"' in page


def test_invitations_and_resets_are_outbox_records(client: FlaskClient, shop: Shop, outbox: Outbox) -> None:
    client.post("/password/forgot", data={"email": shop.owner.email})
    (reset,) = db.session.scalars(select(PlatformMessage))
    assert (reset.status, reset.kind, reset.link_kind) == ("sent", "password_reset", "password_reset")
    assert outbox.to(shop.owner.email)[0]["Message-ID"] == outbox_lib.message_id_of(
        "platform", None, reset.id
    )
