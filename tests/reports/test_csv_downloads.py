"""Every CSV download is formula-safe: a name a spreadsheet would run arrives defused, on every route."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal, InvalidOperation

from flask import Flask
from flask.testing import FlaskClient

from catalog import inventory
from catalog.fileformats import Rejection
from catalog.importing import RejectionReport
from reports import datasets
from reports.filters import Filters, Period
from reports.reconciliation import services
from reports.reconciliation.services import RunRequest
from saas.csvfile import FORMULA_TRIGGERS
from saas.timeutil import frozen_time
from tests.factories import Shop, login
from tests.orders.factories import make_right
from tests.reports.dashboard_fixtures import at, card_key_product, connect_channel, refresh, sell, spend

INJECTION = "=cmd|' /C calc'!A0"
DEFUSED = "'" + INJECTION
# Every route that answers a CSV file; a new one must be added here, and so tested below.
CSV_ROUTES = {
    "reports.download_table",
    "catalog.import_rejections",
    "reconciliation.download",
    "campaigns.statement_csv",
}
MARCH = "period=custom&start=2026-03-01&end=2026-03-31"
MARCH_PERIOD = Period("custom", dt.date(2026, 3, 1), dt.date(2026, 3, 31), "Asia/Shanghai")


def cells_of(body: bytes) -> list[str]:
    assert body.startswith(b"\xef\xbb\xbf"), "a BOM, so a spreadsheet reads Chinese as UTF-8"
    return [cell for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))) for cell in row]


def live_formulas(cells: list[str]) -> list[str]:
    """Return the cells a spreadsheet would run: a formula start that is not a plain (negative) number."""

    def number(cell: str) -> bool:
        try:
            Decimal(cell)
        except InvalidOperation:
            return False
        return True

    return [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS) and not number(cell)]


def test_the_csv_routes_are_the_ones_tested_here(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= CSV_ROUTES
    looks_like_csv = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.endswith(".csv") or "csv" in rule.endpoint or "download" in rule.endpoint
    }
    assert looks_like_csv <= CSV_ROUTES, looks_like_csv - CSV_ROUTES


def test_every_dashboard_table_csv_defuses_names(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        channel = connect_channel("evil", INJECTION)
        product = card_key_product(INJECTION, price=1990)  # the right and its bundle are named so
        sell(product, at(2026, 3, 10), channel="evil")
        spend(channel, at(2026, 3, 11).date(), 5000)
        refresh()
        with frozen_time(at(2026, 4, 1)):
            tables = {
                name: [t.key for t in datasets.build(name, Filters(MARCH_PERIOD), "CNY").tables]
                for name in datasets.BUILDERS
            }
    login(client, shop.members["analyst"])
    seen = 0
    with frozen_time(at(2026, 4, 1)):
        for name, keys in tables.items():
            for key in keys:
                response = client.get(
                    f"/t/{shop.slug}/reports/table.csv?dashboard={name}&table={key}&{MARCH}"
                )
                assert response.status_code == 200 and response.mimetype == "text/csv"
                cells = cells_of(response.get_data())
                assert live_formulas(cells) == [], (name, key)
                seen += cells.count(DEFUSED)
    assert seen >= 5  # by bundle, by right, by channel, channel ROI, trend, stock…


def test_the_import_rejection_report_defuses_its_cells(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right = make_right()
        upload = inventory.start_upload(
            io.BytesIO(b"AB12CD34----SECRET01\n"),
            "keys.txt",
            right_id=right.id,
            supplier="s",
            unit_cost="1.00",
        )
        report = RejectionReport(upload.report)
        report.add(Rejection(1, INJECTION))
        report.close()
    login(client, shop.owner)
    response = client.get(f"/t/{shop.slug}/catalog/inventory/imports/{upload.token}/rejections.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    cells = cells_of(response.get_data())
    assert DEFUSED in cells and live_formulas(cells) == []


def test_the_reconciliation_csv_download_defuses_names(client: FlaskClient, shop: Shop) -> None:
    from tests.orders.factories import make_product
    from tests.reports.books import _paid_order, local, make_channel

    with shop.bound():
        channel = make_channel(public_id="evil")
        channel.name = INJECTION
        product = make_product(make_right("视频月卡"), price=1000)
        _paid_order([(product, 1)], INJECTION, channel.public_id, local(2026, 1, 5))
        run = services.create_run(RunRequest(services.parse_month("2026-01", "Asia/Shanghai")))
        found = {f.format: f for f in services.files_of(run.id)}["csv"]
        run_id, file_id = run.id, found.id
    login(client, shop.members["finance"])
    response = client.get(f"/t/{shop.slug}/reconciliation/runs/{run_id}/files/{file_id}")
    assert response.status_code == 200
    cells = cells_of(response.get_data())
    assert cells.count(DEFUSED) >= 2 and live_formulas(cells) == []  # the channel and the order id


def test_the_partner_statement_csv_defuses_names(client: FlaskClient, shop: Shop) -> None:
    from campaigns import services as campaign_services
    from saas.extensions import db
    from tests.campaigns.factories import make_campaign

    with shop.bound():
        partner = campaign_services.create_partner(INJECTION, "bank")
        partner_id = partner.id
        campaign = make_campaign(partner=partner)
        campaign.name = INJECTION
        db.session.commit()
    login(client, shop.members["finance"])
    response = client.get(f"/t/{shop.slug}/campaigns/partners/{partner_id}/statement.csv")
    assert response.status_code == 200
    cells = cells_of(response.data)
    assert DEFUSED in cells and not live_formulas(cells)
