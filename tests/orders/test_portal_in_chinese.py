"""A Chinese shop's portal reads Chinese: the sign-in form, the rights, subscriptions, family sharing and
receipts, and the SMS a family member gets."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders.models import OrderLine
from saas.extensions import db
from tests.english import english_in_page
from tests.factories import Shop
from tests.orders.portal_helpers import open_link, portal, sms_to
from tests.orders.subscriptions.factories import renewable_plan, subscribe

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
DATA = frozenset({"Buyer"})


def test_every_part_of_a_chinese_shops_portal_is_chinese(app: Flask, client: FlaskClient, shop: Shop) -> None:
    shop.tenant.locale, shop.tenant.name = "zh_CN", "权益小铺"
    db.session.commit()
    with shop.bound():
        plan = renewable_plan("month")
        plan.family_sharing = True
        db.session.commit()
        sub = subscribe(plan, email=None)
        customer_id = int(sub.customer_id or 0)
        line_id = db.session.scalars(select(OrderLine.id).where(OrderLine.order_id == sub.order_id)).one()
    sign_in_page = client.get(portal(shop), headers=CHINESE).get_data(as_text=True)
    assert "获取验证码" in sign_in_page and english_in_page(sign_in_page, DATA) == []
    open_link(client, shop, customer_id)
    client.post(f"{portal(shop)}/family/{line_id}/members", data={"phone": "13900000001"}, headers=CHINESE)
    page = client.get(portal(shop), headers=CHINESE).get_data(as_text=True)
    assert "亲情共享" in page and "我的订阅" in page and "一键复制" in page
    assert english_in_page(page, DATA | {"Asia/Shanghai"}) == []
    (invite,) = sms_to(app, "+8613900000001", "family_shared")
    assert "权益小铺" in str(invite["text"]) and "已与你共享" in str(invite["text"])
