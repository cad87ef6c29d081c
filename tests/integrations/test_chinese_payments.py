"""微信支付 v3, 支付宝 async notifications and 有赞 push: verified, stored, deduplicated and processed.

Every notification is signed (and for WeChat Pay encrypted) in tests/integrations/cn_platforms.py from the
platforms' published algorithms with keys generated for the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from integrations.models import Channel
from orders import services as order_services
from saas.extensions import db
from tests.factories import Shop
from tests.integrations import cn_platforms as cn
from tests.integrations import factories as f


@dataclass
class Setup:
    channel_id: int
    public_id: str
    plan_id: int
    price: int

    @property
    def path(self) -> str:
        return f"/hooks/{self.public_id}"


def connect(shop: Shop, kind: str, credentials: dict[str, Any], price: int = 3990, **settings: Any) -> Setup:
    with shop.bound():
        plan = f.card_plan(price)
        channel = cn.make_platform_channel(kind, credentials, **settings)
        return Setup(channel.id, channel.public_id, plan.id, plan.price)


def pending_order(shop: Shop, setup: Setup, external_id: str, channel: str | None = None) -> None:
    """The merchant's checkout creates the order first, unpaid, as POST /api/v1/orders does."""
    with shop.bound():
        order_services.create_order(
            order_services.OrderRequest(
                channel=channel or setup.public_id,
                external_id=external_id,
                source="api",
                customer=order_services.CustomerInfo(phone="+8613800138000"),
                lines=[order_services.LineRequest(setup.plan_id, 1)],
            )
        )


def map_sku(shop: Shop, setup: Setup, ref: str, kind: str = "sku") -> None:
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, setup.channel_id))
        assert channel is not None
        from catalog.models import Plan

        plan = db.session.get(Plan, (shop.tenant.id, setup.plan_id))
        assert plan is not None
        f.map_sku(channel, ref, plan, kind)


def order_state(shop: Shop, external_id: str, channel: str | None = None) -> tuple[str, int, int] | None:
    """(status, total, refunded) of the order, or None."""
    from sqlalchemy import select

    from orders.models import Order

    with shop.bound():
        statement = select(Order).where(Order.external_id == external_id)
        if channel:
            statement = statement.where(Order.channel == channel)
        order = db.session.scalars(statement).first()
        return None if order is None else (order.status, order.total, order.refunded_amount)


def grant_statuses(shop: Shop, external_id: str) -> list[str]:
    from sqlalchemy import select

    from orders.models import Order

    with shop.bound():
        order = db.session.scalars(select(Order).where(Order.external_id == external_id)).one()
        return [grant.status for grant in f.grants_of(order.id)]


def inbox(shop: Shop, setup: Setup) -> list[tuple[str, str, int]]:
    """(status, note, duplicates) of the channel's inbox rows, oldest first."""
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, setup.channel_id))
        assert channel is not None
        return [(row.status, row.note, row.duplicates) for row in f.inbox_of(channel)]


# ---------------------------------------------------------------- WeChat Pay v3


def test_wechat_pay_pays_the_pending_order_its_checkout_created(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    pending_order(shop, setup, "WX-1001")
    response = cn.wechat_notification(cn.wechat_transaction("WX-1001", setup.price)).post(client, setup.path)
    assert response.status_code == 204
    assert order_state(shop, "WX-1001") == ("fulfilled", 3990, 0)
    assert [status for status, _note, _dups in inbox(shop, setup)] == ["processed"]


def test_wechat_pay_with_the_sku_in_attach_creates_the_order_from_the_mapping(
    client: FlaskClient, shop: Shop
) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    resource = cn.wechat_transaction("WX-2001", setup.price, attach="VIP-MONTH")
    assert cn.wechat_notification(resource).post(client, setup.path).status_code == 204
    assert order_state(shop, "WX-2001", setup.public_id) == ("fulfilled", 3990, 0)


def test_wechat_pay_refusals_answer_fail_and_store_nothing(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    pending_order(shop, setup, "WX-3001")
    resource = cn.wechat_transaction("WX-3001", setup.price)
    refused = {
        "tampered body": cn.wechat_notification(resource, tamper=True),
        "wrong key": cn.wechat_notification(resource, key="someone-else"),
        "wrong serial": cn.wechat_notification(resource, serial="PUB_KEY_ID_0000000000000000000000000000"),
        "stale timestamp": cn.wechat_notification(resource, timestamp=int(time.time()) - 301),
        "future timestamp": cn.wechat_notification(resource, timestamp=int(time.time()) + 310),
        "signature probe": cn.wechat_notification(resource, signature="WECHATPAY/SIGNTEST/abc"),
    }
    for why, delivery in refused.items():
        response = delivery.post(client, setup.path)
        assert response.status_code == 401, why
        assert response.json["code"] == "FAIL" and response.json["message"], why
    assert inbox(shop, setup) == []
    assert order_state(shop, "WX-3001") == ("pending", 3990, 0)


def test_a_wechat_resource_that_will_not_decrypt_is_refused_and_kept_for_inspection(
    client: FlaskClient, shop: Shop
) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    pending_order(shop, setup, "WX-4001")
    wrong_key = "Z" * 32
    delivery = cn.wechat_notification(cn.wechat_transaction("WX-4001", setup.price), api_v3_key=wrong_key)
    response = delivery.post(client, setup.path)
    assert response.status_code == 400 and response.json["code"] == "FAIL"
    assert "APIv3" in response.json["message"]
    ((status, note, _dups),) = inbox(shop, setup)
    assert status == "invalid" and "APIv3" in note
    assert order_state(shop, "WX-4001") == ("pending", 3990, 0)


def test_a_repeated_wechat_notification_is_one_delivery_and_one_payment(
    client: FlaskClient, shop: Shop
) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    resource = cn.wechat_transaction("WX-5001", setup.price, attach="VIP-MONTH")
    for _ in range(3):  # WeChat resends the same id when an answer is slow; each resend is signed anew
        response = cn.wechat_notification(resource, notification_id="EV-SAME-1").post(client, setup.path)
        assert response.status_code == 204
    assert [(s, d) for s, _n, d in inbox(shop, setup)] == [("processed", 2)]
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, setup.channel_id))
        assert channel is not None
        (order,) = f.orders_of(channel)
        assert len(f.grants_of(order.id)) == 1


def test_wechat_refunds_partial_then_full_and_one_arriving_before_its_payment(
    client: FlaskClient, shop: Shop
) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    pending_order(shop, setup, "WX-6001")
    early = cn.wechat_refund("WX-6001", 1000, setup.price, "RF-1")
    assert cn.wechat_notification(early, "REFUND.SUCCESS").post(client, setup.path).status_code == 204
    assert order_state(shop, "WX-6001") == ("pending", 3990, 0)  # nothing to refund yet: it waits
    assert [s for s, _n, _d in inbox(shop, setup)] == ["waiting"]
    cn.wechat_notification(cn.wechat_transaction("WX-6001", setup.price)).post(client, setup.path)
    assert order_state(shop, "WX-6001") == ("partially_refunded", 3990, 1000)
    rest = cn.wechat_refund("WX-6001", 2990, setup.price, "RF-2")
    cn.wechat_notification(rest, "REFUND.SUCCESS").post(client, setup.path)
    cn.wechat_notification(rest, "REFUND.SUCCESS").post(client, setup.path)  # a new id, the same refund
    assert order_state(shop, "WX-6001") == ("refunded", 3990, 3990)
    assert grant_statuses(shop, "WX-6001") == ["revoked"]


def test_a_wechat_payment_of_another_amount_is_held_with_the_reason(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    pending_order(shop, setup, "WX-7001")
    cn.wechat_notification(cn.wechat_transaction("WX-7001", 1)).post(client, setup.path)
    ((status, note, _dups),) = inbox(shop, setup)
    assert status == "held" and "Amount mismatch" in note and "3990" in note and "1 CNY" in note
    assert order_state(shop, "WX-7001") == ("pending", 3990, 0)


def test_a_wechat_payment_within_the_channels_tolerance_pays(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "wechatpay", cn.wechat_credentials(), price_tolerance_percent="1")
    pending_order(shop, setup, "WX-7002")
    cn.wechat_notification(cn.wechat_transaction("WX-7002", 3960)).post(client, setup.path)
    assert order_state(shop, "WX-7002") == ("fulfilled", 3990, 0)


def test_wechat_platform_certificates_and_the_public_key_both_verify_while_migrating(
    client: FlaskClient, shop: Shop
) -> None:
    credentials = dict(
        cn.wechat_credentials(),
        platform_certificates=[{"serial": cn.CERT_SERIAL, "pem": cn.certificate_pem("wechat-cert")}],
    )
    setup = connect(shop, "wechatpay", credentials)
    map_sku(shop, setup, "VIP-MONTH")
    by_key = cn.wechat_notification(cn.wechat_transaction("WX-8001", setup.price, attach="VIP-MONTH"))
    by_cert = cn.wechat_notification(
        cn.wechat_transaction("WX-8002", setup.price, attach="VIP-MONTH"),
        key="wechat-cert",
        serial=cn.CERT_SERIAL,
    )
    assert by_key.post(client, setup.path).status_code == 204
    assert by_cert.post(client, setup.path).status_code == 204
    assert order_state(shop, "WX-8002", setup.public_id) == ("fulfilled", 3990, 0)


def test_wechat_credentials_rotate_with_an_overlap(client: FlaskClient, shop: Shop) -> None:
    from integrations import channels

    setup = connect(shop, "wechatpay", cn.wechat_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    new_key = "n" * 32
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, setup.channel_id))
        assert channel is not None
        channels.set_credentials(
            channel, cn.wechat_credentials("wechat-new", api_v3_key=new_key), overlap_hours=24
        )
    old = cn.wechat_notification(cn.wechat_transaction("WX-9001", setup.price, attach="VIP-MONTH"))
    new = cn.wechat_notification(
        cn.wechat_transaction("WX-9002", setup.price, attach="VIP-MONTH"),
        key="wechat-new",
        api_v3_key=new_key,
    )
    assert old.post(client, setup.path).status_code == 204
    assert new.post(client, setup.path).status_code == 204
    assert order_state(shop, "WX-9001", setup.public_id) == ("fulfilled", 3990, 0)
    assert order_state(shop, "WX-9002", setup.public_id) == ("fulfilled", 3990, 0)
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, setup.channel_id))
        assert channel is not None
        channels.set_credentials(
            channel, cn.wechat_credentials("wechat-new", api_v3_key=new_key), overlap_hours=0
        )
    late = cn.wechat_notification(cn.wechat_transaction("WX-9003", setup.price, attach="VIP-MONTH"))
    assert late.post(client, setup.path).status_code == 401


# ---------------------------------------------------------------- Alipay


def test_alipay_pays_the_pending_order_and_answers_success(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    pending_order(shop, setup, "ALI-1001")
    response = cn.alipay_notification(cn.alipay_fields("ALI-1001", "39.90")).post(client, setup.path)
    assert response.status_code == 200 and response.get_data() == b"success"
    assert order_state(shop, "ALI-1001") == ("fulfilled", 3990, 0)


@pytest.mark.parametrize("alias", ["api", "id", "alipay"])
def test_alipay_pays_an_order_the_checkout_created_under_another_name_of_the_channel(
    client: FlaskClient, shop: Shop, alias: str
) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    channel = str(setup.channel_id) if alias == "id" else alias
    pending_order(shop, setup, "ALI-1002", channel=channel)
    cn.alipay_notification(cn.alipay_fields("ALI-1002", "39.90")).post(client, setup.path)
    assert order_state(shop, "ALI-1002", channel) == ("fulfilled", 3990, 0)
    refund = dict(cn.alipay_fields("ALI-1002", "39.90"), refund_fee="39.90", trade_status="TRADE_CLOSED")
    cn.alipay_notification(refund).post(client, setup.path)
    assert order_state(shop, "ALI-1002", channel) == ("refunded", 3990, 3990)


def test_alipay_in_gbk_with_the_sku_in_passback_params(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    map_sku(shop, setup, "影音-月卡")
    fields = cn.alipay_fields("ALI-2001", "39.90", passback_params="%E5%BD%B1%E9%9F%B3-%E6%9C%88%E5%8D%A1")
    response = cn.alipay_notification(fields, charset="gbk").post(client, setup.path)
    assert response.get_data() == b"success"
    assert order_state(shop, "ALI-2001", setup.public_id) == ("fulfilled", 3990, 0)


def test_alipay_refusals_answer_fail(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    pending_order(shop, setup, "ALI-3001")
    fields = cn.alipay_fields("ALI-3001", "39.90")
    refused = {
        "changed amount": cn.alipay_notification(fields, tamper={"total_amount": "0.01"}),
        "wrong key": cn.alipay_notification(fields, key="someone-else"),
        "another app": cn.alipay_notification(dict(fields, app_id="2021009999999999")),
        "RSA1": cn.alipay_notification(fields, tamper={"sign_type": "RSA"}),
    }
    for why, delivery in refused.items():
        response = delivery.post(client, setup.path)
        assert response.status_code == 401 and response.get_data() == b"fail", why
    assert inbox(shop, setup) == []
    assert order_state(shop, "ALI-3001") == ("pending", 3990, 0)


def test_a_repeated_alipay_notification_is_one_delivery(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    pending_order(shop, setup, "ALI-4001")
    fields = cn.alipay_fields("ALI-4001", "39.90")
    for _ in range(3):
        assert cn.alipay_notification(fields).post(client, setup.path).get_data() == b"success"
    assert [(s, d) for s, _n, d in inbox(shop, setup)] == [("processed", 2)]


def test_alipay_refunds_partial_full_and_before_the_payment(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    pending_order(shop, setup, "ALI-5001")
    paid = cn.alipay_fields("ALI-5001", "39.90")
    partial = dict(
        cn.alipay_fields("ALI-5001", "39.90"),
        refund_fee="10.00",
        gmt_refund="2026-12-04 21:00:00.123",
        out_biz_no="REFUND-1",
    )
    cn.alipay_notification(partial).post(client, setup.path)  # the refund overtook the payment
    assert [s for s, _n, _d in inbox(shop, setup)] == ["waiting"]
    cn.alipay_notification(paid).post(client, setup.path)
    assert order_state(shop, "ALI-5001") == ("partially_refunded", 3990, 1000)
    assert grant_statuses(shop, "ALI-5001") == ["delivered"]  # money back in part; the right stays
    full = dict(
        cn.alipay_fields("ALI-5001", "39.90"),
        trade_status="TRADE_CLOSED",
        refund_fee="39.90",
        gmt_refund="2026-12-04 21:30:00",
        out_biz_no="REFUND-2",
    )
    cn.alipay_notification(full).post(client, setup.path)
    assert order_state(shop, "ALI-5001") == ("refunded", 3990, 3990)
    assert grant_statuses(shop, "ALI-5001") == ["revoked"]


def test_an_alipay_payment_of_another_amount_is_held(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    pending_order(shop, setup, "ALI-6001")
    cn.alipay_notification(cn.alipay_fields("ALI-6001", "0.01")).post(client, setup.path)
    ((status, note, _d),) = inbox(shop, setup)
    assert status == "held" and "Amount mismatch" in note
    assert order_state(shop, "ALI-6001") == ("pending", 3990, 0)


def test_an_alipay_payment_for_no_order_and_no_sku_is_held_saying_what_to_do(
    client: FlaskClient, shop: Shop
) -> None:
    setup = connect(shop, "alipay", cn.alipay_credentials())
    cn.alipay_notification(cn.alipay_fields("ALI-7001", "39.90")).post(client, setup.path)
    ((status, note, _d),) = inbox(shop, setup)
    assert status == "held" and "ALI-7001" in note and "SKU" in note


# ---------------------------------------------------------------- Youzan


def youzan_lines(sku: str = "VIP-MONTH", payment: str = "39.90") -> list[dict[str, Any]]:
    return [
        {
            "oid": "1",
            "outer_item_id": "ITEM-VIP",
            "outer_sku_id": sku,
            "num": 1,
            "price": payment,
            "payment": payment,
            "title": "影音畅享包 月卡",
        }
    ]


def test_a_youzan_paid_trade_is_fulfilled_through_its_outer_sku_id(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "youzan", cn.youzan_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    trade = cn.youzan_trade("E20261204200000000001", "39.90", youzan_lines())
    response = cn.youzan_push("trade_TradePaid", trade, business_id="E20261204200000000001").post(
        client, setup.path
    )
    assert response.status_code == 200 and response.json == {"code": 0, "msg": "success"}
    assert order_state(shop, "E20261204200000000001", setup.public_id) == ("fulfilled", 3990, 0)


def test_a_youzan_outer_item_id_maps_as_a_product(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "youzan", cn.youzan_credentials())
    map_sku(shop, setup, "ITEM-VIP", kind="product")
    trade = cn.youzan_trade("E2", "39.90", youzan_lines(sku=""))
    cn.youzan_push("trade_TradePaid", trade, business_id="E2").post(client, setup.path)
    assert order_state(shop, "E2", setup.public_id) == ("fulfilled", 3990, 0)


def test_youzan_refusals(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "youzan", cn.youzan_credentials())
    trade = cn.youzan_trade("E3", "39.90", youzan_lines())
    refused = {
        "tampered body": cn.youzan_push("trade_TradePaid", trade, business_id="E3", tamper=True),
        "wrong secret": cn.youzan_push("trade_TradePaid", trade, business_id="E3", secret="x" * 20),
        "another shop": cn.youzan_push("trade_TradePaid", trade, business_id="E3", kdt_id="1"),
    }
    for why, delivery in refused.items():
        assert delivery.post(client, setup.path).status_code == 401, why
    assert inbox(shop, setup) == []


def test_youzan_duplicates_refunds_and_a_refund_before_its_trade(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "youzan", cn.youzan_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    refund = {"tid": "E4", "refund_id": "201912", "refunded_fee": "10.00", "oids": "1"}
    cn.youzan_push("trade_refund_RefundSuccess", refund).post(client, setup.path)
    trade = cn.youzan_trade("E4", "39.90", youzan_lines())
    paid = cn.youzan_push("trade_TradePaid", trade, business_id="E4", msg_id="M-PAID-E4")
    assert paid.post(client, setup.path).json == {"code": 0, "msg": "success"}
    assert paid.post(client, setup.path).json == {"code": 0, "msg": "success"}
    assert order_state(shop, "E4", setup.public_id) == ("partially_refunded", 3990, 1000)
    statuses = [(s, d) for s, _n, d in inbox(shop, setup)]
    assert statuses == [("processed", 0), ("processed", 1)]


def test_a_youzan_trade_priced_beyond_the_tolerance_is_held(client: FlaskClient, shop: Shop) -> None:
    setup = connect(shop, "youzan", cn.youzan_credentials())
    map_sku(shop, setup, "VIP-MONTH")
    trade = cn.youzan_trade("E5", "0.01", youzan_lines(payment="0.01"))
    cn.youzan_push("trade_TradePaid", trade, business_id="E5").post(client, setup.path)
    ((status, note, _d),) = inbox(shop, setup)
    assert status == "held" and "Amount mismatch" in note


# ---------------------------------------------------------------- configuration: API and back office


def api_key(shop: Shop) -> dict[str, str]:
    from tenants import services as tenant_services
    from tenants.roles import PERMISSIONS, Role

    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "payments", list(PERMISSIONS))
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_connects_a_wechat_pay_channel_with_write_only_credentials(
    client: FlaskClient, shop: Shop
) -> None:
    headers = api_key(shop)
    body = {"kind": "wechatpay", "name": "微信支付", "credentials": cn.wechat_credentials()}
    response = client.post("/api/v1/channels", json=body, headers=headers)
    assert response.status_code == 201, response.json
    created = response.json
    assert created["secret"] is None and created["secret_hint"] == cn.MCH_ID
    assert created["fee_percent_bp"] == 60 and created["webhook_url"].endswith(created["webhook_url"][-30:])
    assert cn.API_V3_KEY not in response.get_data(as_text=True)
    read = client.get(f"/api/v1/channels/{created['id']}", headers=headers).get_data(as_text=True)
    assert cn.API_V3_KEY not in read and "credentials" not in read
    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, int(created["id"])))
        assert channel is not None and cn.API_V3_KEY.encode() not in bytes(channel.secret_ciphertext or b"")
        public_id = channel.public_id
    assert created["webhook_url"].endswith(f"/hooks/{public_id}")
    revealed = client.post(f"/api/v1/channels/{created['id']}/secret", json={}, headers=headers)
    assert revealed.status_code == 409


def test_the_api_refuses_missing_or_unusable_credentials(client: FlaskClient, shop: Shop) -> None:
    headers = api_key(shop)
    cases = [
        ({"kind": "alipay", "name": "支付宝"}, "credentials"),
        (
            {
                "kind": "wechatpay",
                "name": "微信",
                "credentials": dict(cn.wechat_credentials(), api_v3_key="short"),
            },
            "api_v3_key",
        ),
        (
            {
                "kind": "alipay",
                "name": "支付宝",
                "credentials": {"app_id": "1", "alipay_public_key": "not a key"},
            },
            "alipay_public_key",
        ),
        ({"kind": "youzan", "name": "有赞", "credentials": {"client_id": "c"}}, "client_secret"),
        ({"kind": "shopify", "name": "S", "credentials": {"a": "b"}}, "secret"),
    ]
    for body, word in cases:
        response = client.post("/api/v1/channels", json=body, headers=headers)
        assert response.status_code == 422 and word in response.json["message"], (body, response.json)


def test_api_credentials_rotate_with_an_overlap_and_notifications_verify(
    client: FlaskClient, shop: Shop
) -> None:
    headers = api_key(shop)
    body = {"kind": "youzan", "name": "有赞店", "credentials": cn.youzan_credentials()}
    created = client.post("/api/v1/channels", json=body, headers=headers).json
    path = "/hooks/" + created["webhook_url"].rsplit("/", 1)[-1]
    rotated = client.post(
        f"/api/v1/channels/{created['id']}/credentials",
        json={"credentials": cn.youzan_credentials("new-secret-0123456789"), "overlap_hours": 2},
        headers=headers,
    )
    assert rotated.status_code == 200 and rotated.json["previous_secret_valid_until"]
    trade = cn.youzan_trade("E-ROT", "39.90", youzan_lines())
    assert cn.youzan_push("trade_TradePaid", trade, business_id="E-ROT").post(client, path).status_code == 200
    new = cn.youzan_push("trade_TradePaid", trade, business_id="E-ROT", secret="new-secret-0123456789")
    assert new.post(client, path).status_code == 200
    assert cn.youzan_push("trade_TradePaid", trade, secret="x" * 20).post(client, path).status_code == 401


def test_the_setup_page_shows_the_notify_url_and_the_console_steps_in_both_languages(
    client: FlaskClient, shop: Shop
) -> None:
    from integrations.channels import list_channels
    from tests.factories import login

    login(client, shop.owner)
    response = client.post(
        f"/t/{shop.slug}/channels/new",
        data={"kind": "wechatpay", "name": "微信支付", "currency": "CNY"},
        headers={"Accept-Language": "zh-CN"},
        follow_redirects=True,
    )
    chinese = response.get_data(as_text=True)
    with shop.bound():
        (channel,) = list_channels()
        public_id, channel_id = channel.public_id, channel.id
        assert channel.fee_percent_bp == 60  # the platform's usual fee, editable below
    url = f"/hooks/{public_id}"
    assert url in chinese and "通知地址" in chinese and "微信支付商户平台" in chinese and "未设置" in chinese
    english = client.get(f"/t/{shop.slug}/channels/{channel_id}", headers={"Accept-Language": "en"})
    text = english.get_data(as_text=True)
    assert "WeChat Pay merchant platform" in text and "PUB_KEY_ID_" in text and url in text
    assert f"channel = {public_id}" in text
    credentials = cn.wechat_credentials()
    fields = ("mch_id", "app_id", "api_v3_key", "platform_public_key_id", "platform_public_key")
    saved = client.post(
        f"/t/{shop.slug}/channels/{channel_id}/credentials",
        data={**{name: credentials[name] for name in fields}, "overlap_hours": "0"},
        headers={"Accept-Language": "en"},
        follow_redirects=True,
    )
    page = saved.get_data(as_text=True)
    assert "Credentials saved" in page and cn.MCH_ID in page and cn.API_V3_KEY not in page
    with shop.bound():
        found = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert found is not None
        f.map_sku(found, "VIP-MONTH", f.card_plan(3990))
    paid = cn.wechat_notification(cn.wechat_transaction("WX-UI-1", 3990, attach="VIP-MONTH"))
    assert paid.post(client, url).status_code == 204
    assert order_state(shop, "WX-UI-1", public_id) == ("fulfilled", 3990, 0)


def test_through_the_api_alone_a_checkout_order_is_paid_by_wechat_pay(
    client: FlaskClient, shop: Shop
) -> None:
    headers = api_key(shop)
    with shop.bound():
        plan_id = f.card_plan(3990).id
    body = {"kind": "wechatpay", "name": "微信支付", "credentials": cn.wechat_credentials()}
    channel = client.post("/api/v1/channels", json=body, headers=headers).json
    public_id = channel["webhook_url"].rsplit("/", 1)[-1]
    order = {
        "external_id": "WX-API-1",
        "channel": public_id,
        "customer": {"phone": "13800138000"},
        "lines": [{"plan_id": str(plan_id), "quantity": 1}],
    }
    created = client.post("/api/v1/orders", json=order, headers=headers)
    assert created.status_code == 201 and created.json["status"] == "pending"
    paid = cn.wechat_notification(cn.wechat_transaction("WX-API-1", 3990))
    assert paid.post(client, f"/hooks/{public_id}").status_code == 204
    read = client.get(f"/api/v1/orders/{created.json['id']}", headers=headers).json
    assert read["status"] == "fulfilled" and len(read["grants"]) == 1
    inbox_rows = client.get(f"/api/v1/channels/{channel['id']}", headers=headers).json["inbox"]
    assert inbox_rows["processed"] == 1
