"""On a phone (390 × 844) every main page of the back office and the customer pages fits the screen.

The demo shop is signed in as its owner and each area's main pages are opened at phone width, in Chinese and
in English: the page must be no wider than the window (wide tables scroll inside their own box), and the
failure names the element that sticks out. The navigation folds behind a menu button. At desktop width the
sidebar stays and the channel ROI table fits its card.

Set QUANYI_SCREENSHOTS=<folder> to keep a full-page screenshot of every page walked, to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from campaigns.models import Campaign, Partner
from catalog.models import Bundle, CardKeyBatch, Plan, Right
from integrations.models import Channel
from orders.delivery import my_rights_token
from orders.models import Customer, Order
from orders.subscriptions.models import Subscription
from orders.subscriptions.selfservice import self_service_token
from reports.reconciliation.models import ReconciliationRun
from saas.extensions import db
from tenants.demo import DEMO_PASSWORD, create_demo_tenant, demo_email
from tenants.roles import Role
from tenants.scoping import tenant_bound
from tests.browser.conftest import browser_app, served

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
OVERFLOW = (Path(__file__).with_name("page_overflow.js")).read_text(encoding="utf-8")
# Every data table sits in a box that scrolls sideways, so a wide one never widens the page.
UNBOXED_TABLES = """() => [...document.querySelectorAll("table.data")]
  .filter((t) => !t.parentElement.classList.contains("table-scroll"))
  .map((t) => t.getAttribute("data-testid") || "table.data")"""


@dataclass(frozen=True)
class DemoSite:
    """The demo shop served on loopback, and the addresses of the pages to walk."""

    base: str
    back_office: list[tuple[str, str]]
    signed_out_pages: list[tuple[str, str]]  # the customer pages and the way in


def _first_id(model: Any) -> int:
    found = db.session.scalars(select(model.id).order_by(model.id).limit(1)).first()
    assert found is not None, f"the demo data has no {model.__name__}"
    return int(found)


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """Serve an app holding the demo shop (one per module: the walk only reads)."""
    directory = tmp_path_factory.mktemp("phone")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUANYI_INSTANCE_PATH", str(directory / "instance"))
        app = browser_app(directory)
        with app.app_context():
            tenant, _, _ = create_demo_tenant()
            with tenant_bound(tenant.id):
                t = "/t/demo"
                back_office = [
                    ("home and checklist", f"{t}/"),
                    ("rights", f"{t}/catalog/rights"),
                    ("a right", f"{t}/catalog/rights/{_first_id(Right)}"),
                    ("new right", f"{t}/catalog/rights/new"),
                    ("bundles", f"{t}/catalog/bundles"),
                    ("a bundle", f"{t}/catalog/bundles/{_first_id(Bundle)}"),
                    ("new bundle", f"{t}/catalog/bundles/new"),
                    ("a plan", f"{t}/catalog/plans/{_first_id(Plan)}/edit"),
                    ("stock", f"{t}/catalog/inventory"),
                    ("card keys", f"{t}/catalog/inventory/keys"),
                    ("a batch", f"{t}/catalog/inventory/batches/{_first_id(CardKeyBatch)}"),
                    ("import card keys", f"{t}/catalog/inventory/import"),
                    ("orders", f"{t}/orders/"),
                    ("an order", f"{t}/orders/{_first_id(Order)}"),
                    ("new order", f"{t}/orders/new"),
                    ("upload orders", f"{t}/orders/upload"),
                    ("redemptions", f"{t}/orders/redemptions"),
                    ("top-ups", f"{t}/orders/topups"),
                    ("customers", f"{t}/orders/customers"),
                    ("a customer", f"{t}/orders/customers/{_first_id(Customer)}"),
                    ("channels", f"{t}/channels"),
                    ("a channel and its setup", f"{t}/channels/{_first_id(Channel)}"),
                    ("connect a channel", f"{t}/channels/new"),
                    ("a channel's inbox", f"{t}/channels/{_first_id(Channel)}/inbox"),
                    ("channel spend", f"{t}/channels/spend"),
                    ("dead letters", f"{t}/channels/dead-letters"),
                    ("outbound webhooks", f"{t}/channels/webhooks"),
                    ("subscriptions", f"{t}/subscriptions"),
                    ("a subscription", f"{t}/subscriptions/{_first_id(Subscription)}"),
                    ("subscription policies", f"{t}/subscriptions/policies"),
                    ("risk review", f"{t}/risk/"),
                    ("risk anomalies", f"{t}/risk/anomalies"),
                    ("risk rules", f"{t}/risk/settings"),
                    ("partner campaigns", f"{t}/campaigns/"),
                    ("a partner campaign", f"{t}/campaigns/{_first_id(Campaign)}"),
                    ("new partner campaign", f"{t}/campaigns/new"),
                    ("a partner statement", f"{t}/campaigns/partners/{_first_id(Partner)}/statement"),
                    ("dashboards", f"{t}/reports/"),
                    ("redemption dashboard", f"{t}/reports/redemption"),
                    ("channel ROI dashboard", f"{t}/reports/channel-roi"),
                    ("renewals dashboard", f"{t}/reports/renewals"),
                    ("sales dashboard", f"{t}/reports/sales"),
                    ("reconciliation", f"{t}/reconciliation/"),
                    ("a reconciliation run", f"{t}/reconciliation/runs/{_first_id(ReconciliationRun)}"),
                    ("team", f"{t}/team"),
                    ("audit log", f"{t}/audit"),
                    ("settings", f"{t}/settings"),
                    ("API keys", f"{t}/api-keys"),
                    ("account", "/account"),
                ]
                signed_out_pages = [
                    ("log in", "/login"),
                    ("sign up", "/signup"),
                    ("my rights: sign in by code", f"/shop/{tenant.slug}/my?address=13800000000"),
                    # the link of a message signs the customer in and opens the portal
                    ("claim a campaign code", f"/claim/{tenant.slug}/"),
                    ("my rights", f"/my/{my_rights_token(tenant.id, _first_id(Customer))}"),
                    (
                        "my subscription",
                        f"/my/subscriptions/{self_service_token(tenant.id, _first_id(Subscription))}",
                    ),
                ]
            db.session.remove()
        with served(app) as base:
            yield DemoSite(base, back_office, signed_out_pages)


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", demo_email(Role.OWNER))
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/demo/")


def _open(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, f"{url} answered {response and response.status}"
    for chart in page.locator("[data-chart]").all():  # plotly draws after load; measure the drawn chart
        chart.locator(".main-svg").first.wait_for()


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("QUANYI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _problems(page: Any, label: str) -> list[str]:
    """Return what is wrong with the open page's width, each naming the page."""
    problems = []
    overflow = page.evaluate(OVERFLOW)
    if overflow:
        problems.append(f"{label} ({page.url}): {overflow}")
    unboxed = page.evaluate(UNBOXED_TABLES)
    if unboxed:
        problems.append(f"{label}: table(s) {', '.join(unboxed)} not inside a div.table-scroll")
    return problems


def _new_page(browser_page: Any, viewport: dict[str, int], locale: str, **options: Any) -> Any:
    context = browser_page.context.browser.new_context(
        viewport=viewport, locale=locale, has_touch=True, **options
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


def _import_preview(page: Any, site: DemoSite, key_file: Path) -> None:
    """Upload a supplier key file through the import form, which opens its preview."""
    _open(page, f"{site.base}/t/demo/catalog/inventory/import")
    page.fill("input[name=supplier]", "腾讯官方旗舰店 Tencent official flagship store")
    page.fill("input[name=unit_cost]", "12.50")
    page.set_input_files("input[name=file]", str(key_file))
    page.click("main form button[type=submit]")
    page.locator("[data-testid=preview]").wait_for()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_every_main_page_fits_a_phone_screen(
    demo_site: DemoSite, browser_page: Any, tmp_path: Path, locale: str
) -> None:
    page = _new_page(browser_page, PHONE, locale)
    _sign_in(page, demo_site.base)
    problems: list[str] = []
    for label, path in demo_site.back_office:
        _open(page, demo_site.base + path)
        problems += _problems(page, label)
        _screenshot(page, f"{locale}-{label}")

    key_file = tmp_path / "腾讯视频VIP月卡-2026年12月第一批-供应商对账用.csv"
    rows = [f"TXVIP2026{n:012d},{n:08d}SECRETPASSWORD{n:06d},2027-12-31,第{n}张" for n in range(12)]
    key_file.write_text("卡号,卡密,有效期,备注\n" + "\n".join(rows) + "\n", encoding="utf-8")
    _import_preview(page, demo_site, key_file)
    problems += _problems(page, "import preview")
    _screenshot(page, f"{locale}-import preview")

    visitor = _new_page(browser_page, PHONE, locale)  # a customer is not signed in to the back office
    for label, path in demo_site.signed_out_pages:
        _open(visitor, demo_site.base + path)
        problems += _problems(visitor, label)
        _screenshot(visitor, f"{locale}-{label}")

    assert not problems, "wider than a 390 px phone:\n" + "\n".join(problems)


def test_on_a_phone_the_navigation_folds_behind_a_menu_button(demo_site: DemoSite, browser_page: Any) -> None:
    page = _new_page(browser_page, PHONE, "zh-CN")
    _sign_in(page, demo_site.base)
    nav = page.locator("[data-testid=nav]")
    menu = page.locator("[data-menu-button]")
    expect(nav).to_be_hidden()
    expect(page.locator("#account-menu")).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")

    menu.click()
    expect(nav).to_be_visible()
    expect(page.locator("#account-menu")).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    _screenshot(page, "zh-CN-menu open")
    orders = nav.locator("[data-endpoint='orders.orders']")
    box = orders.bounding_box()
    assert box is not None and box["height"] >= 40, f"the Orders entry is {box} px: too small to tap"
    assert page.evaluate(OVERFLOW) is None

    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    menu.click()
    orders.click()
    page.wait_for_url(f"{demo_site.base}/t/demo/orders/")
    expect(nav).to_be_hidden()  # the next page opens with the menu folded again


def test_without_javascript_a_phone_shows_the_navigation_unfolded(
    demo_site: DemoSite, browser_page: Any
) -> None:
    page = _new_page(browser_page, PHONE, "zh-CN", java_script_enabled=False)
    _sign_in(page, demo_site.base)
    expect(page.locator("[data-testid=nav]")).to_be_visible()
    expect(page.locator("#account-menu")).to_be_visible()
    expect(page.locator("[data-menu-button]")).to_be_hidden()
    assert page.evaluate(OVERFLOW) is None


def test_signed_out_on_a_phone_there_is_nothing_to_fold(demo_site: DemoSite, browser_page: Any) -> None:
    page = _new_page(browser_page, PHONE, "zh-CN")
    _open(page, f"{demo_site.base}/login")
    expect(page.locator("[data-menu-button]")).to_have_count(0)
    expect(page.locator("#account-menu a[href='/signup']")).to_be_visible()


def test_at_desktop_width_the_sidebar_stays_and_the_channel_roi_table_fits_its_card(
    demo_site: DemoSite, browser_page: Any
) -> None:
    page = _new_page(browser_page, DESKTOP, "zh-CN")
    _sign_in(page, demo_site.base)
    pages = dict(demo_site.back_office)
    problems: list[str] = []
    for label in ("home and checklist", "an order", "a channel and its setup", "audit log"):
        _open(page, demo_site.base + pages[label])
        expect(page.locator("[data-testid=nav]")).to_be_visible()
        expect(page.locator("[data-menu-button]")).to_be_hidden()
        problems += _problems(page, label)

    _open(page, demo_site.base + pages["channel ROI dashboard"])
    problems += _problems(page, "channel ROI dashboard")
    roi = page.locator("[data-testid=table-per_channel]")
    hidden = roi.evaluate("(t) => t.parentElement.scrollWidth - t.parentElement.clientWidth")
    assert hidden <= 0, f"the channel ROI table hides {hidden} px of its columns inside its card"
    assert not problems, "wider than a 1280 px window:\n" + "\n".join(problems)
