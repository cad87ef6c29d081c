"""SMS: a phone-only customer's delivery goes out by SMS through the outbox, with a short `/m/…` link."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders.models import Delivery
from saas.extensions import db
from saas.phones import PhoneInvalid, normalise_phone
from tests.factories import Shop
from tests.orders.factories import add_keys, make_product, place_order


def sms_files(app: Flask) -> list[dict[str, object]]:
    folder = Path(app.config["SMS_DIR"])
    paths = sorted(folder.glob("*.json")) if folder.exists() else []
    return [json.loads(p.read_text("utf-8")) for p in paths]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800000000", "+8613800000000"),
        ("138 0000-0000", "+8613800000000"),
        ("+86 138 0000 0000", "+8613800000000"),
        ("008613800000000", "+8613800000000"),
        ("8613800000000", "+8613800000000"),
        ("+85291234567", "+85291234567"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "12345", "010-12345678", "+86 12000000000", "phone", "+0123456789"])
def test_what_is_not_a_mobile_number_is_refused(raw: str) -> None:
    with pytest.raises(PhoneInvalid):
        normalise_phone(raw)


def test_a_phone_only_customer_gets_the_delivery_by_sms_with_a_short_link(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    assert Path(app.config["SMS_DIR"]) == Path(app.instance_path) / "sms"
    with shop.bound():
        product = make_product()
        (card,) = add_keys(product.right, 1)
        order = place_order(product, "SMS-1", paid=True, email=None)
    (message,) = sms_files(app)
    assert message["to"] == "+8613800000000" and message["kind"] == "delivery"
    text = str(message["text"])
    assert "SMS-1" in text and card not in text
    found = re.search(r"http://quanyi\.test(/m/[A-Za-z0-9]{12})$", text)
    assert found is not None, text
    assert message["params"] == {  # the variables the template gets
        "shop": shop.tenant.name,
        "order": "SMS-1",
        "link": found.group(0),
    }
    assert len(text) <= 140  # two SMS at most, whatever the shop's name
    opened = client.get(found.group(1))
    assert opened.status_code == 302 and "/my/" in opened.headers["Location"]
    page = client.get(opened.headers["Location"], follow_redirects=True)  # signs in to the shop's portal
    assert page.status_code == 200 and "视频月卡" in page.get_data(as_text=True)
    assert page.request.path == f"/shop/{shop.slug}/my"
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order.id))
        assert (log.method, log.recipient, log.status, log.attempts) == ("sms", "+8613800000000", "sent", 1)


def test_a_guessed_or_expired_short_link_opens_nothing(app: Flask, client: FlaskClient, shop: Shop) -> None:
    import datetime as dt

    from saas.timeutil import frozen_time, utcnow

    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        place_order(product, "SMS-2", paid=True, email=None)
    path = re.search(r"/m/\w+", str(sms_files(app)[0]["text"]))
    assert path is not None
    assert client.get("/m/AAAAAAAAAAAA").status_code == 404
    assert client.get("/m/short").status_code == 404
    later = utcnow() + dt.timedelta(seconds=int(app.config.get("MY_RIGHTS_LINK_MAX_AGE", 90 * 86400)) + 60)
    with frozen_time(later):
        assert client.get(path.group(0)).status_code == 404


def test_a_customer_with_both_gets_the_tenants_choice(app: Flask, shop: Shop) -> None:
    from orders import services
    from tests.orders.factories import order_request

    with shop.bound():
        product = make_product()
        add_keys(product.right, 2)
        request = order_request(product, "BOTH-1", paid=True)
        request.customer.phone = "13900000000"
        services.create_order(request)
        assert sms_files(app) == []  # mail by default
        shop.tenant.settings = {**shop.tenant.settings, "sms": {"prefer": "sms"}}
        db.session.commit()
        request = order_request(product, "BOTH-2", paid=True)
        request.customer.phone = "13900000000"
        services.create_order(request)
    (message,) = sms_files(app)
    assert message["to"] == "+8613900000000" and "BOTH-2" in str(message["text"])


def test_a_verification_code_goes_by_sms_is_limited_per_phone_and_erased_once_sent(
    app: Flask, shop: Shop
) -> None:
    import datetime as dt

    from saas.timeutil import frozen_time, utcnow
    from tenants.models import OutboxMessage
    from tenants.outbox import SmsCodeLimited, queue_sms

    start = utcnow()
    with shop.bound():
        with frozen_time(start):
            record_id = queue_sms("138 0000 0000", "verification_code", {"code": "482913", "minutes": "10"})
            with pytest.raises(SmsCodeLimited):  # 1 a minute
                queue_sms("+8613800000000", "verification_code", {"code": "111111", "minutes": "10"})
            queue_sms("13900000000", "verification_code", {"code": "222222", "minutes": "10"})  # other phone
        for minute in range(1, 10):
            with frozen_time(start + dt.timedelta(minutes=2 * minute)):
                queue_sms("13800000000", "verification_code", {"code": f"{minute:06d}", "minutes": "10"})
        with frozen_time(start + dt.timedelta(minutes=30)), pytest.raises(SmsCodeLimited):  # 10 a day
            queue_sms("13800000000", "verification_code", {"code": "333333", "minutes": "10"})
        record = db.session.get(OutboxMessage, (shop.tenant.id, record_id))
        assert record is not None and record.status == "sent" and record.body == ""  # the code is gone
    first = sms_files(app)[0]
    assert first["to"] == "+8613800000000" and first["kind"] == "verification_code"
    assert first["params"] == {"code": "482913", "minutes": "10"} and "482913" in str(first["text"])
    assert len(sms_files(app)) == 11


def test_a_stored_sms_with_a_link_gets_a_short_link(app: Flask, client: FlaskClient, shop: Shop) -> None:
    from tenants.outbox import queue_sms

    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "SMS-3", paid=True, email=None)
        queue_sms(
            "13800000000",
            "renewal_reminder",
            {"shop": shop.tenant.name, "plan": "视频月卡", "date": "2026-12-07"},
            link=("my_rights", [shop.tenant.id, order.customer_id]),
        )
    reminder = sms_files(app)[-1]
    assert reminder["kind"] == "renewal_reminder" and "2026-12-07" in str(reminder["text"])
    link = str(reminder["params"]["link"])  # type: ignore[index]
    assert link.startswith("http://quanyi.test/m/")
    assert "/my/" in client.get(link.removeprefix("http://quanyi.test")).headers["Location"]


def test_the_sms_settings_page_sets_the_signature_templates_and_channel(
    client: FlaskClient, shop: Shop
) -> None:
    from tests.factories import login

    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/settings/sms").get_data(as_text=True)
    assert "${shop} ${order} ${link}" in page and "${code} ${minutes}" in page  # the variables beside each
    assert '<div class="table-scroll">' in page and 'data-testid="sms-off"' not in page
    saved = client.post(
        f"/t/{shop.slug}/settings/sms",
        data={"sign_name": "权益小铺", "prefer": "sms", "delivery": "SMS_1", "verification_code": "SMS_2"},
    )
    assert saved.status_code == 302
    db.session.refresh(shop.tenant)
    assert shop.tenant.settings["sms"]["sign_name"] == "权益小铺"
    assert shop.tenant.settings["sms"]["templates"]["delivery"] == "SMS_1"
    assert shop.tenant.settings["sms"]["prefer"] == "sms"
    chinese = client.get(f"/t/{shop.slug}/settings/sms", headers={"Accept-Language": "zh-CN"})
    assert "签名" in chinese.get_data(as_text=True)


def test_in_production_without_sms_url_the_settings_page_says_mail_only(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from saas import sms
    from tests.factories import login

    login(client, shop.owner)
    app.config["ENV_NAME"] = "production"
    page = client.get(f"/t/{shop.slug}/settings/sms").get_data(as_text=True)
    assert 'data-testid="sms-off"' in page and "mail only" in page
    assert not sms.sms_configured()
    assert sms.channel_for({}, "delivery", None, "13800000000") is None
    assert sms.channel_for({}, "delivery", "a@example.test", "13800000000") == ("mail", "a@example.test")


def test_a_filled_backorder_goes_to_a_phone_only_customer_as_its_own_sms_kind(app: Flask, shop: Shop) -> None:
    from orders.fulfilment import fill_backorders

    with shop.bound():
        product = make_product()
        place_order(product, "BACK-1", paid=True, email=None)  # no stock: backordered
        assert sms_files(app) == []
        add_keys(product.right, 1)
        fill_backorders(product.right.id)
    (message,) = sms_files(app)
    assert message["kind"] == "backorder_filled" and "BACK-1" in str(message["text"])
    assert "/m/" in str(message["text"])
