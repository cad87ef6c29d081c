"""In a real browser: sign up, invite a member, log in as that member, see the role's navigation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.factories import Outbox

pytestmark = pytest.mark.browser


def nav_endpoints(page: Any) -> set[str]:
    return set(page.locator("[data-testid=nav] a").evaluate_all("els => els.map(e => e.dataset.endpoint)"))


def test_a_merchant_signs_up_invites_an_analyst_who_sees_an_analysts_navigation(
    live_app: tuple[Flask, str], browser_page: Any
) -> None:
    app, base = live_app
    page = browser_page
    page.goto(f"{base}/signup")
    page.fill("input[name=tenant_name]", "Starlight Rights")
    page.fill("input[name=slug]", "starlight")
    page.fill("input[name=name]", "Stella")
    page.fill("input[name=email]", "stella@starlight.test")
    page.fill("input[name=password]", "stella-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/starlight/")
    assert page.locator("[data-testid=role]").inner_text() == "Owner"
    assert {"tenant.settings", "tenant.audit_log", "tenant.api_keys"} <= nav_endpoints(page)

    page.click("[data-endpoint='tenant.team']")
    page.fill("input[name=email]", "ana@starlight.test")
    page.select_option("select[name=role] >> nth=-1", "analyst")
    page.click("text=Send invitation")
    assert "ana@starlight.test" in page.content()

    (mail,) = Outbox(Path(app.config["MAIL_DIR"])).to("ana@starlight.test")
    link = re.search(r"http://\S+/invitations/\S+", Outbox.body(mail))
    assert link is not None
    path = link.group(0).split("/invitations/", 1)[1]
    page.click("text=Log out")
    page.goto(f"{base}/invitations/{path}")
    page.fill("input[name=name]", "Ana Lyst")
    page.fill("input[name=password]", "ana-password-12")
    page.click("text=Accept invitation")
    page.wait_for_url(f"{base}/t/starlight/")

    page.click("text=Log out")
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "ana@starlight.test")
    page.fill("input[name=password]", "ana-password-12")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/starlight/")
    assert page.locator("[data-testid=role]").inner_text() == "Analyst"
    visible = nav_endpoints(page)
    assert "tenant.team" in visible
    assert not visible & {"tenant.settings", "tenant.audit_log", "tenant.api_keys"}
    page.goto(f"{base}/t/starlight/settings")
    assert "Your role does not allow this" in page.content()
