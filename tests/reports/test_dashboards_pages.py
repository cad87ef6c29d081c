"""Dashboard pages: who may read them, what an empty shop sees, charts beside their numbers, CSV and API."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from reports.dashboards import PLOTLY_URL
from saas import money
from saas.money import format_money
from saas.timeutil import frozen_time
from tenants import services
from tenants.roles import Role
from tests.factories import Shop, login
from tests.reports.dashboard_fixtures import at, card_key_product, first_grant, redeem, refresh, sell

PAGES = ("redemption", "channel-roi", "renewals", "sales")
MARCH = "period=custom&start=2026-03-01&end=2026-03-31"
DASHBOARD_OF_PAGE = {
    "redemption": "redemption",
    "channel-roi": "channel_roi",
    "renewals": "renewals",
    "sales": "sales",
}


@pytest.fixture
def sold_in_march(shop: Shop) -> None:
    """Three video orders on 2 March, one redeemed the same day."""
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        orders = [sell(video, at(2026, 3, 2, 10)) for _ in range(3)]
        redeem(first_grant(orders[0]), at(2026, 3, 2, 11))
        refresh()


def api_key(shop: Shop, scopes: list[str]) -> dict[str, str]:
    with shop.bound():
        _, secret = services.create_api_key(Role.OWNER, "dashboards", scopes)
    return {"Authorization": f"Bearer {secret}"}


def csv_rows(client: FlaskClient, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_an_analyst_reads_every_dashboard_and_support_cannot(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.members["analyst"])
    assert client.get(f"/t/{shop.slug}/reports/").status_code == 200
    for page in PAGES:
        assert client.get(f"/t/{shop.slug}/reports/{page}").status_code == 200, page
    client.post("/logout")
    login(client, shop.members["support"])
    assert client.get(f"/t/{shop.slug}/reports/").status_code == 403
    for page in PAGES:
        assert client.get(f"/t/{shop.slug}/reports/{page}").status_code == 403, page
    csv_url = f"/t/{shop.slug}/reports/table.csv?dashboard=sales&table=over_time"
    assert client.get(csv_url).status_code == 403
    navigation = client.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert 'data-endpoint="reports.dashboards"' not in navigation


def test_a_brand_new_shop_sees_a_friendly_empty_state_not_an_error(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.members["analyst"])
    index = client.get(f"/t/{shop.slug}/reports/").get_data(as_text=True)
    assert 'data-testid="empty-dashboard"' in index and "No sales in this period yet" in index
    for page in PAGES:
        response = client.get(f"/t/{shop.slug}/reports/{page}")
        assert response.status_code == 200
        assert "No activity in this period yet" in response.get_data(as_text=True), page
    headers = api_key(shop, ["reports.view"])
    body = client.get("/api/v1/reports/channel-roi", headers=headers).json
    assert body["empty"] is True and body["tables"][0]["rows"] == []


def test_every_chart_has_its_table_and_a_csv_and_no_inline_script(
    client: FlaskClient, shop: Shop, sold_in_march: None
) -> None:
    login(client, shop.members["analyst"])
    page = client.get(f"/t/{shop.slug}/reports/redemption?{MARCH}").get_data(as_text=True)
    charts = re.findall(
        r'<section class="card" data-table="([a-z_]+)">\s*<h2>[^<]*</h2>\s*<div class="chart" data-chart=',
        page,
    )
    assert "over_time" in charts and "by_bundle" in charts and "time_to_redeem" in charts
    for table in charts:
        assert f'data-testid="table-{table}"' in page and f'data-testid="csv-{table}"' in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None, "the CSP forbids inline scripts"
    assert f'src="{PLOTLY_URL}"' in page and "js/charts.js" in page
    assert "33.3%" in page, "2 March: 1 of 3 grants redeemed"


def test_plotly_is_served_from_the_installed_package_with_long_cache_headers(client: FlaskClient) -> None:
    response = client.get(PLOTLY_URL)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert b"plotly" in response.get_data()[:2000].lower()


def test_the_pages_stay_out_of_the_dashboards_of_pages_that_have_none(
    client: FlaskClient, shop: Shop
) -> None:
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert "plotly" not in page and "charts.js" not in page


@pytest.mark.parametrize("page", PAGES)
def test_the_json_api_equals_the_pages_tables_and_their_csv(
    app: Flask, client: FlaskClient, shop: Shop, sold_in_march: None, page: str
) -> None:
    headers = api_key(shop, ["reports.view"])
    with frozen_time(at(2026, 4, 1)):
        api = client.get(f"/api/v1/reports/{page}?{MARCH}", headers=headers)
        assert api.status_code == 200, api.get_data(as_text=True)
        login(client, shop.members["analyst"])
        html = client.get(f"/t/{shop.slug}/reports/{page}?{MARCH}").get_data(as_text=True)
        for table in api.json["tables"]:
            if not table["rows"]:
                continue
            assert f'data-testid="table-{table["key"]}"' in html
            name = DASHBOARD_OF_PAGE[page]
            url = f"/t/{shop.slug}/reports/table.csv?dashboard={name}&table={table['key']}&{MARCH}"
            assert csv_rows(client, url) == [_in_csv(row, table["columns"]) for row in table["rows"]], table[
                "key"
            ]
            for row in table["rows"]:
                for column in table["columns"]:
                    assert _shown(row[column["key"]], column) in html, (table["key"], column["key"])


def _in_csv(row: dict[str, Any], columns: list[dict[str, str]]) -> dict[str, str]:
    """Return an API row as the CSV holds it: headed by labels, money in yuan with two decimals."""
    cells = {}
    for column in columns:
        value = row[column["key"]]
        if column["kind"] == "money":
            cells[f"{column['label']} (CNY)"] = "" if value is None else money.to_text(int(value), "CNY")
        elif column["kind"] == "days" and value == ">365":
            cells[column["label"]] = "more than a year"
        else:
            cells[column["label"]] = "" if value is None else str(value)
    return cells


def _shown(value: Any, column: dict[str, str]) -> str:
    if value is None:
        return "—"
    if column["kind"] == "money":
        return format_money(int(value), "CNY")
    if column["kind"] == "count":
        return f"{int(value):,}"
    if column["kind"] == "ratio":
        return f"{float(value) * 100:.1f}%"
    return str(value)


def test_the_api_needs_the_reports_scope_and_names_a_bad_filter(client: FlaskClient, shop: Shop) -> None:
    assert client.get("/api/v1/reports/sales", headers=api_key(shop, [])).status_code == 403
    headers = api_key(shop, ["reports.view"])
    bad = client.get("/api/v1/reports/sales?period=custom&start=31/01/2026", headers=headers)
    assert bad.status_code == 400 and bad.json["code"] == "invalid_filter"
    backwards = client.get("/api/v1/reports/sales?start=2026-03-10&end=2026-03-01", headers=headers)
    assert backwards.status_code == 400


def test_another_shops_bundle_is_an_unknown_filter(client: FlaskClient, shop: Shop, other_shop: Shop) -> None:
    with other_shop.bound():
        theirs = card_key_product("竞品月卡", price=990).bundle.id
    headers = api_key(shop, ["reports.view"])
    response = client.get(f"/api/v1/reports/sales?bundle={theirs}", headers=headers)
    assert response.status_code == 400 and "bundle" in response.json["message"].lower()
    login(client, shop.members["analyst"])
    page = client.get(f"/t/{shop.slug}/reports/sales?bundle={theirs}")
    assert page.status_code == 400 and 'data-testid="filter-error"' in page.get_data(as_text=True)


def test_the_figures_say_how_fresh_they_are_and_a_merchant_can_recompute_them(
    client: FlaskClient, shop: Shop, sold_in_march: None
) -> None:
    with shop.bound():
        video = card_key_product("音乐月卡", price=990)
        sell(video, at(2026, 3, 3, 10))  # sold after the last refresh: not yet in the rollups
    login(client, shop.members["analyst"])
    with frozen_time(at(2026, 4, 1)):
        before = client.get(f"/t/{shop.slug}/reports/sales?{MARCH}").get_data(as_text=True)
        assert 'data-testid="freshness"' in before and "Figures as of" in before
        assert "音乐月卡" not in before.split('data-testid="table-by_bundle"')[1].split("</table>")[0]
        answer = client.post(
            f"/t/{shop.slug}/reports/refresh", data={"next": f"/t/{shop.slug}/reports/sales?{MARCH}"}
        )
        assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/reports/sales?{MARCH}")
        after = client.get(f"/t/{shop.slug}/reports/sales?{MARCH}").get_data(as_text=True)
    assert "音乐月卡" in after.split('data-testid="table-by_bundle"')[1].split("</table>")[0]
    assert "2026-04-01" in after.split('data-testid="freshness"')[1].split("</form>")[0]
    outside = client.post(f"/t/{shop.slug}/reports/refresh", data={"next": "https://evil.example/"})
    assert outside.headers["Location"].endswith(f"/t/{shop.slug}/reports/")
    login(client, shop.members["support"])  # support reads no dashboards, so it cannot recompute them
    assert client.post(f"/t/{shop.slug}/reports/refresh").status_code in (403, 404)
