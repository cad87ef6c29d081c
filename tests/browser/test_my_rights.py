"""In a real browser: a paid order is delivered; its customer opens "my rights", reveals and redeems the key,
and support sees the redemption on the order page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from saas.extensions import db
from tests.factories import PASSWORD, Outbox, make_shop
from tests.orders.factories import add_keys, make_product, place_order

pytestmark = pytest.mark.browser


def test_a_customer_reveals_and_redeems_a_key_and_support_sees_it(
    live_app: tuple[Flask, str], browser_page: Any
) -> None:
    app, base = live_app
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    with app.app_context():
        shop = make_shop("starlight")
        with shop.bound():
            product = make_product()
            (card,) = add_keys(product.right, 1)
            order = place_order(product, "WEB-1001", paid=True, email="mei@example.test")
            order_id = order.id
        support_email = shop.members["support"].email
        db.session.remove()
    (mail,) = Outbox(Path(app.config["MAIL_DIR"])).to("mei@example.test")
    body = Outbox.body(mail)
    assert card not in body
    found = re.search(r"/my/\S+", body)
    assert found is not None
    page.goto(base + found.group(0))
    right = page.locator("[data-testid=right]")
    assert "视频月卡" in right.inner_text()
    assert card not in page.content()
    page.click("text=Show")
    expect(page.locator("[data-testid=secret]")).to_contain_text(card)
    page.click("text=I have used it")
    page.wait_for_selector("[data-testid=right][data-status=redeemed]")

    page.goto(f"{base}/login")
    page.fill("input[name=email]", support_email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/starlight/")
    page.click("[data-endpoint='orders.orders']")
    page.click("text=WEB-1001")
    assert page.locator("[data-testid=order-status]").inner_text() == "Fulfilled"
    redemptions = page.locator("[data-testid=redemptions]").inner_text()
    assert "Customer" in redemptions and "Redeemed" in redemptions
    assert page.locator("[data-testid=grants] tr[data-status=redeemed]").count() == 1
    assert str(order_id) in page.url
