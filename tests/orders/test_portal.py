"""我的权益: one portal per shop at /shop/<slug>/my, signed in by a one-time code or by the link in a message.

A phone-only buyer gets an SMS with a short link that opens the portal signed in; anyone can sign in again
with their phone (SMS) or email (mail) and a six-digit code; the portal lists every right of the customer
across channels, with reveal (audited), copy, redeem, subscriptions and receipts.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from orders import services
from orders.customers import find_customer
from orders.models import Customer
from orders.portal.models import PortalCode
from saas.extensions import db
from tenants.models import AuditEvent
from tests.factories import Outbox, Shop, login
from tests.orders.factories import add_keys, grants_of, make_product, make_right, order_request, place_order
from tests.orders.portal_helpers import (
    ask_code,
    enter_code,
    last_code_by_sms,
    open_link,
    page_text,
    portal,
    sign_in_by_sms,
    sms_files,
    sms_to,
)

PHONE = "+8613800000000"


def test_a_phone_only_buyer_follows_the_sms_link_into_the_portal_signed_in(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        place_order(product, "SMS-PORTAL-1", paid=True, email=None)
    (message,) = sms_files(app)
    short = re.search(r"http://quanyi\.test(/m/[A-Za-z0-9]{12})$", str(message["text"]))
    assert message["to"] == PHONE and short is not None
    opened = client.get(short.group(1), follow_redirects=True)
    assert opened.status_code == 200 and opened.request.path == portal(shop)
    text = opened.get_data(as_text=True)
    assert "视频月卡" in text and "SMS-PORTAL-1" in text and "Sign out" in text


def test_a_customer_signs_in_with_a_code_sent_by_sms(app: Flask, client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product(make_right("优酷会员", kind="link", link_url="https://example.com/youku"))
        place_order(product, "CODE-1", paid=True, email=None)
    assert "Send me a code" in page_text(client, shop)  # a visitor sees the sign-in form, no rights
    assert "优酷会员" not in page_text(client, shop)
    ask_code(client, shop, "138 0000 0000")
    (code_sms,) = sms_to(app, PHONE, "verification_code")
    code = last_code_by_sms(app, PHONE)
    assert len(code) == 6 and "10" in str(code_sms["text"])
    with shop.bound():
        stored = db.session.scalars(select(PortalCode)).one()
        assert code not in stored.code_hash and stored.address == PHONE  # only a keyed hash is kept
    enter_code(client, shop, "13800000000", code)
    assert "优酷会员" in page_text(client, shop)
    assert enter_code(client, shop, PHONE, code).status_code == 302  # used once: a second use is refused
    client.post(f"{portal(shop)}/sign-out")
    assert "优酷会员" not in page_text(client, shop)


def test_a_customer_with_an_email_gets_the_code_by_mail(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        product = make_product(make_right("优酷会员", kind="link", link_url="https://example.com/youku"))
        place_order(product, "MAIL-1", paid=True, email="Mei@Example.test")
    ask_code(client, shop, "mei@example.test")
    (mail,) = outbox.to("mei@example.test")[-1:]
    code = re.search(r"^\s+(\d{6})$", outbox.body(mail), re.M)
    assert code is not None
    enter_code(client, shop, "MEI@example.test", code.group(1))
    assert "优酷会员" in page_text(client, shop)


def test_five_wrong_codes_lock_the_code(app: Flask, client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        place_order(make_product(), "LOCK-1", paid=False, email=None)
    ask_code(client, shop, PHONE)
    code = last_code_by_sms(app, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for attempt in range(5):
        response = enter_code(client, shop, PHONE, wrong)
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert ("attempts left" in page) if attempt < 4 else ("Too many wrong codes" in page)
    enter_code(client, shop, PHONE, code)  # the right code, too late
    assert "Sign out" not in page_text(client, shop)


def test_codes_are_limited_per_number_and_per_ip_address(app: Flask, client: FlaskClient, shop: Shop) -> None:
    ask_code(client, shop, "13800000001", ip="203.0.113.9")
    ask_code(client, shop, "13800000001", ip="203.0.113.10")  # same number within a minute
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(PortalCode)) == 1
    for n in range(2, 6):  # other numbers, one network: three a minute
        ask_code(client, shop, f"1380000000{n}", ip="203.0.113.9")
    page = client.get(portal(shop)).get_data(as_text=True)
    assert "Too many codes were asked for from your network" in page
    with shop.bound():
        assert (
            db.session.scalar(
                select(func.count()).select_from(PortalCode).where(PortalCode.ip == "203.0.113.9")
            )
            == 3
        )


def test_an_unknown_number_gets_the_same_answer_and_no_message(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    response = ask_code(client, shop, "13900000000")
    assert response.status_code == 302
    assert "is on its way" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert sms_files(app) == []


def test_the_portal_shows_rights_from_two_channels_as_one_customer(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        video = make_product(make_right("腾讯视频月卡"))
        music = make_product(make_right("QQ音乐绿钻", kind="link", link_url="https://example.com/qq"))
        add_keys(video.right, 1)
        place_order(video, "SHOP-1", paid=True, email=None, channel="shop")
        second = order_request(music, "YZ-1", paid=True, channel="youzan")
        second.customer = services.CustomerInfo(email="buyer@example.test", phone="13800000000", name="李")
        services.create_order(second)
        customer = find_customer(phone=PHONE)
        assert customer is not None
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 1
    sign_in_by_sms(app, client, shop, PHONE)
    text = page_text(client, shop)
    assert "腾讯视频月卡" in text and "QQ音乐绿钻" in text and "SHOP-1" in text and "YZ-1" in text
    assert "¥19.90" in text  # receipts: the orders with their amounts


def test_revealing_a_code_in_the_portal_is_audited(app: Flask, client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        (card,) = add_keys(product.right, 1)
        order = place_order(product, "REVEAL-1", paid=True, email=None)
        customer_id = int(order.customer_id or 0)
    page = open_link(client, shop, customer_id).get_data(as_text=True)
    found = re.search(r'data-reveal-url="([^"]+)"', page)
    assert found is not None and card not in page
    assert "data-copy-url" in page  # 一键复制
    revealed = client.post(found.group(1))
    assert revealed.status_code == 200 and card in revealed.json["value"]  # type: ignore[index]
    with shop.bound():
        (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "grant.revealed"))
        assert "portal" in event.actor and event.details["order_id"] == str(order.id)
    redeemed = client.post(found.group(1).replace("/reveal", "/redeem"), follow_redirects=True)
    assert "Used on" in redeemed.get_data(as_text=True)


def test_a_session_of_one_shop_sees_nothing_of_another(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        mine = place_order(product, "ISO-A", paid=True, email=None)
        my_customer, my_grant = int(mine.customer_id or 0), grants_of(mine.id)[0].id
    with other_shop.bound():
        theirs = make_product(make_right("别家的权益"))
        add_keys(theirs.right, 1)
        other = place_order(theirs, "ISO-B", paid=True, email=None)
        their_grant = grants_of(other.id)[0].id
    open_link(client, shop, my_customer)
    assert "ISO-A" in page_text(client, shop)
    other_page = page_text(client, other_shop)  # the same phone number in the other shop: not signed in
    assert "ISO-B" not in other_page and "别家的权益" not in other_page and "Send me a code" in other_page
    assert client.post(f"{portal(shop)}/grants/{their_grant}/reveal").status_code == 404
    assert client.post(f"{portal(other_shop)}/grants/{my_grant}/reveal").status_code == 404
    assert client.post(f"{portal(other_shop)}/grants/{their_grant}/reveal").status_code == 404


def test_the_back_office_tells_the_merchant_where_customers_sign_in(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/orders/customers").get_data(as_text=True)
    assert f"http://quanyi.test/shop/{shop.slug}/my" in page


def test_a_shop_without_an_sms_template_for_codes_asks_for_the_email_instead(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["SMS_URL"] = "tencent://id:key@?sdk_app_id=1400000000&sign_name=权益小铺"  # no templates set
    response = ask_code(client, shop, PHONE)
    assert "sign in with your email address" in client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(PortalCode)) == 0
