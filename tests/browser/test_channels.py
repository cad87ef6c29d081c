"""In a real browser: connect a Shopify channel, map a SKU, receive a signed order, see it fulfilled."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from flask import Flask

from saas.extensions import db
from tenants.scoping import tenant_bound
from tests.factories import PASSWORD, make_shop
from tests.integrations import factories as f

pytestmark = pytest.mark.browser


def test_a_merchant_connects_shopify_maps_a_sku_and_sees_the_paid_order_fulfilled(
    live_app: tuple[Flask, str], browser_page: Any
) -> None:
    app, base = live_app
    with app.app_context():
        shop = make_shop("starlight")
        with tenant_bound(shop.tenant.id):
            f.card_plan(3990, keys=3)
        owner_email = shop.owner.email
        db.session.remove()
    page = browser_page
    page.goto(f"{base}/login")
    page.fill("input[name=email]", owner_email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/starlight/")

    page.click("[data-endpoint='integrations.channels']")
    page.click("text=Connect a channel")
    page.select_option("select[name=kind]", "shopify")
    page.fill("input[name=name]", "Starlight Shopify")
    page.fill("input[name=secret]", f.SHOPIFY_SECRET)
    page.click("main form.card button[type=submit]")
    hook_url = page.locator("[data-testid=hook-url]").inner_text()
    assert hook_url.startswith(base + "/hooks/shopify_")
    assert "orders/paid" in page.locator("[data-testid=setup-steps]").inner_text()

    form = page.locator("[data-testid=mapping-form]")
    form.locator("select[name=ref_kind]").select_option("sku")
    form.locator("input[name=external_ref]").fill("VIP-MONTH")
    form.locator("select[name=plan_id]").select_option(index=0)
    form.locator("button[type=submit]").click()
    assert "VIP-MONTH" in page.locator("[data-testid=mappings]").inner_text()

    delivery = f.shopify(f.shopify_order(4242))
    request = urllib.request.Request(hook_url, data=delivery.body, headers=delivery.headers, method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200

    page.reload()
    recent = page.locator("[data-testid=recent]")
    assert "Processed" in recent.locator("[data-testid=inbox-status]").first.inner_text()
    assert "Fulfilled" in recent.locator("[data-testid=order-status]").first.inner_text()
    assert "4242" in recent.inner_text()


FITS = """[...document.querySelectorAll('main section.card')]
    .every(card => card.scrollWidth <= card.clientWidth)"""


def fits_its_cards(page: Any) -> bool:
    """Tell whether every card's content fits the card (the notify URL and keys wrap, inputs shrink)."""
    return bool(page.evaluate(FITS))


def test_at_390_px_a_merchant_connects_wechat_pay_with_its_credentials_and_a_payment_arrives(
    live_app: tuple[Flask, str], browser_page: Any
) -> None:
    from tests.integrations import cn_platforms as cn

    app, base = live_app
    with app.app_context():
        shop = make_shop("moonlight")
        with tenant_bound(shop.tenant.id):
            f.card_plan(3990, keys=3)
        owner_email = shop.owner.email
        db.session.remove()
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/login")
    page.fill("input[name=email]", owner_email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/moonlight/")
    page.goto(f"{base}/t/moonlight/channels/new")
    page.select_option("select[name=kind]", "wechatpay")
    page.fill("input[name=name]", "微信支付")
    page.click("main form.card button[type=submit]")
    hook_url = page.locator("[data-testid=hook-url]").inner_text()
    assert hook_url.startswith(base + "/hooks/wechatpay_")
    assert "PUB_KEY_ID_" in page.locator("[data-testid=setup-steps]").inner_text()

    credentials = cn.wechat_credentials()
    form = page.locator("[data-testid=credentials] form")
    for name in ("mch_id", "app_id", "api_v3_key", "platform_public_key_id"):
        form.locator(f"input[name={name}]").fill(credentials[name])
    form.locator("textarea[name=platform_public_key]").fill(credentials["platform_public_key"])
    form.locator("button[type=submit]").click()
    assert cn.MCH_ID in page.locator("[data-testid=setup]").inner_text()
    assert fits_its_cards(page)

    mapping = page.locator("[data-testid=mapping-form]")
    mapping.locator("input[name=external_ref]").fill("VIP-MONTH")
    mapping.locator("select[name=plan_id]").select_option(index=0)
    mapping.locator("button[type=submit]").click()
    delivery = cn.wechat_notification(cn.wechat_transaction("WX-BROWSER-1", 3990, attach="VIP-MONTH"))
    request = urllib.request.Request(hook_url, data=delivery.body, headers=delivery.headers, method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 204
    page.reload()
    assert "Processed" in page.locator("[data-testid=recent] [data-testid=inbox-status]").first.inner_text()
    assert fits_its_cards(page)
