"""A Chinese shop reads Chinese: its customers' pages and mails, status words, held notes; and each tenant's
API and background jobs speak that tenant's language, whoever calls."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from flask_babel import force_locale
from flask_babel import gettext as _

from orders.subscriptions import reminders, selfservice
from saas.extensions import db
from saas.labels import label
from saas.timeutil import frozen_time
from tenants import services as tenant_services
from tenants.roles import Role
from tenants.scoping import tenant_bound
from tests.english import english_in_page, english_words
from tests.factories import Outbox, Shop, make_shop
from tests.integrations import factories as channel_factories
from tests.orders.factories import add_keys, make_product, make_right, place_order
from tests.orders.subscriptions.factories import local, renewable_plan, subscribe

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
DATA = frozenset({"Buyer"})  # the test customer's name: data, not the product's words


@pytest.fixture
def zh_shop(shop: Shop) -> Shop:
    """The test shop as a Chinese merchant runs it: Chinese language setting and Chinese names."""
    shop.tenant.locale, shop.tenant.name = "zh_CN", "权益小铺"
    db.session.commit()
    return shop


def _link(body: str, prefix: str) -> str:
    found = re.search(rf"(?:https?://[^/\s]+)?({prefix}\S+)", body)
    assert found is not None, body
    return found.group(1)


def _mail_text(mail: object) -> str:
    return f"{mail['Subject']}\n{Outbox.body(mail)}"  # type: ignore[index]


def test_every_customer_mail_and_page_of_a_chinese_shop_is_chinese(
    client: FlaskClient, zh_shop: Shop, outbox: Outbox
) -> None:
    with zh_shop.bound():
        product = make_product(make_right("视频月卡"), make_right("音乐会员", kind="code"))
        add_keys(product.right, 1)
        place_order(product, "ZH-1", paid=True)
    (delivery_mail,) = outbox.to("buyer@example.test")
    rights_page = client.get(
        _link(Outbox.body(delivery_mail), "/my/"), headers=CHINESE, follow_redirects=True
    )
    assert rights_page.status_code == 200 and "视频月卡" in rights_page.get_data(as_text=True)

    with zh_shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))
        url = "/my/subscriptions/" + selfservice.self_service_token(zh_shop.tenant.id, sub.id)
    with frozen_time(local(2026, 2, 25)):
        with zh_shop.bound():
            assert reminders.send_due_reminders() == 1
        first_page = client.get(url, headers=CHINESE)
        client.post(f"{url}/code", headers=CHINESE)
        code = re.search(r"\b(\d{6})\b", Outbox.body(outbox.messages()[-1]))
        assert code is not None
        client.post(f"{url}/verify", data={"code": code.group(1)}, headers=CHINESE)
        verified_page = client.get(url, headers=CHINESE)
        client.post(
            f"{url}/cancel", data={"when": "at_period_end", "reason_code": "too_expensive"}, headers=CHINESE
        )
        cancelled_page = client.get(url, headers=CHINESE)
        client.post(f"{url}/undo", headers=CHINESE)

    mails = outbox.messages()
    subjects = " | ".join(str(m["Subject"]) for m in mails)
    assert len(mails) == 6, subjects  # two deliveries, reminder, code, receipt, undo
    for mail in mails:
        assert english_words(_mail_text(mail)) == [], _mail_text(mail)
    for page in (rights_page, first_page, verified_page, cancelled_page):
        assert page.status_code == 200
        assert english_in_page(page.get_data(as_text=True), DATA) == [], visible(page.get_data(as_text=True))


def visible(page: str) -> str:
    from tests.english import visible_text

    return re.sub(r"\s+", " ", visible_text(page))


def test_a_customer_whose_browser_asks_for_neither_language_reads_the_shops(
    client: FlaskClient, zh_shop: Shop, outbox: Outbox
) -> None:
    with zh_shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        place_order(product, "ZH-2", paid=True)
    link = _link(Outbox.body(outbox.to("buyer@example.test")[0]), "/my/")
    page = client.get(link, headers={"Accept-Language": "ja-JP"}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "我的权益" in page and english_in_page(page, DATA) == []


def test_status_words_are_labels_in_the_readers_language(zh_shop: Shop) -> None:
    with force_locale("zh_CN"):
        assert label("order_status", "fulfilled") == "已发放"
        assert label("fulfilment_kind", "card_key") == "卡密"
        assert label("import_row_outcome", "duplicate_in_file") == "文件内重复"
        assert label("bundle_status", "active") != label("subscription_status", "active")
    with force_locale("en"):
        assert label("subscription_status", "canceled") == "Cancelled"
    assert (
        label("order_status", None) == ""
        and label("order_status", "from_a_newer_build") == "from_a_newer_build"
    )


def _api_key(shop: Shop) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "zh", ["catalog.manage"])
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_answers_in_the_tenants_language_whatever_the_client_sends(
    client: FlaskClient, zh_shop: Shop
) -> None:
    english_shop = make_shop("west")  # locale "en"
    bad_right = {"name": "", "kind": "card_key", "currency": "CNY"}
    for_chinese = client.post(
        "/api/v1/rights", json=bad_right, headers={**_api_key(zh_shop), "Accept-Language": "en"}
    )
    for_english = client.post(
        "/api/v1/rights", json=bad_right, headers={**_api_key(english_shop), "Accept-Language": "zh-CN"}
    )
    assert for_chinese.status_code == for_english.status_code == 422
    chinese_message, english_message = for_chinese.json["message"], for_english.json["message"]  # type: ignore[index]
    assert re.search(r"[\u4e00-\u9fff]", chinese_message), chinese_message
    assert not re.search(r"[\u4e00-\u9fff]", english_message) and english_words(english_message), (
        english_message
    )
    # and a Chinese-tenant request in between changes nothing for the next English-tenant one
    again = client.post("/api/v1/rights", json=bad_right, headers=_api_key(english_shop))
    assert again.json["message"] == english_message  # type: ignore[index]


def test_a_job_writes_in_the_language_of_the_tenant_it_works_for(zh_shop: Shop) -> None:
    english_shop = make_shop("west")
    # one context, several tenants in turn: a periodic job does exactly this
    for _round in range(2):
        with tenant_bound(english_shop.tenant.id):
            assert _("Orders") == "Orders"
        with tenant_bound(zh_shop.tenant.id):
            assert _("Orders") == "订单"


def test_a_held_channel_order_without_a_title_has_a_clean_note(client: FlaskClient, zh_shop: Shop) -> None:
    with zh_shop.bound():
        channel = channel_factories.make_channel("shopify")
        public_id = channel.public_id
    order = channel_factories.shopify_order(2001, sku="NEW-SKU")
    order["line_items"][0]["title"] = ""
    channel_factories.shopify(order).post(client, f"/hooks/{public_id}")
    with zh_shop.bound():
        (row,) = channel_factories.inbox_of(channel)
    assert row.status == "held"
    assert "NEW-SKU" in row.note and "?" not in row.note and "（" not in row.note
    assert row.note.startswith("未知 SKU"), row.note
