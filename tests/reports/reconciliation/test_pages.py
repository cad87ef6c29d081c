"""Finance runs reconciliation and downloads its files from the back office and the API; an analyst cannot."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from reports.reconciliation.models import ReconciliationRun
from saas.extensions import db
from tenants import services
from tenants.models import AuditEvent
from tenants.roles import REPORTS_EXPORT, REPORTS_VIEW, Role
from tests.factories import Shop, login
from tests.reports.books import JANUARY, make_january_books


def new_january_run(client: FlaskClient, shop: Shop) -> str:
    response = client.post(
        f"/t/{shop.slug}/reconciliation/runs",
        data={"period_kind": "month", "month": "2026-01", "channel": "", "formats": ["csv", "xlsx", "pdf"]},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def test_an_analyst_cannot_open_or_export_reconciliation(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
    login(client, shop.members["analyst"])
    assert client.get(f"/t/{shop.slug}/reconciliation/").status_code == 403
    assert client.post(f"/t/{shop.slug}/reconciliation/runs", data={"month": "2026-01"}).status_code == 403
    nav = client.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert 'data-endpoint="reconciliation.runs"' not in nav
    with shop.bound():
        assert db.session.scalars(select(ReconciliationRun)).first() is None


def test_finance_runs_a_month_sees_the_summary_and_downloads_every_file(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        make_january_books(shop)
    login(client, shop.members["finance"])
    nav = client.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert 'data-endpoint="reconciliation.runs"' in nav
    run_url = new_january_run(client, shop)
    page = client.get(run_url).get_data(as_text=True)
    assert 'data-testid="run-status">Done' in page
    assert 'data-total="net">¥47.36' in page and 'data-total="gross_profit">¥18.36' in page
    assert "音乐月卡" in page  # keys delivered by batch
    listing = client.get(f"/t/{shop.slug}/reconciliation/").get_data(as_text=True)
    assert "2026-01" in listing and "¥69.60" in listing
    with shop.bound():
        run = db.session.scalars(select(ReconciliationRun)).one()
        run_id, created_by = run.id, run.created_by
        from reports.reconciliation.services import files_of

        files = [(f.id, f.format, f.filename, f.size) for f in files_of(run.id)]
    assert created_by == "finance@acme.test"
    for file_id, fmt, filename, size in files:
        response = client.get(f"{run_url}/files/{file_id}")
        assert response.status_code == 200, fmt
        assert filename in response.headers["Content-Disposition"]
        assert len(response.data) == size
    with shop.bound():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("reconciliation.%"))
        ).all()
    assert sorted(actions) == ["reconciliation.file_downloaded"] * 3 + ["reconciliation.run_created"]
    assert str(run_id) in run_url


def test_a_bad_period_is_refused_with_a_message(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.members["finance"])
    response = client.post(
        f"/t/{shop.slug}/reconciliation/runs",
        data={"period_kind": "month", "month": "January", "formats": ["csv"]},
    )
    assert response.status_code == 400
    assert "Choose a month as YYYY-MM." in response.get_data(as_text=True)
    response = client.post(
        f"/t/{shop.slug}/reconciliation/runs",
        data={"period_kind": "range", "starts_on": "2026-02-01", "ends_on": "2026-01-01", "formats": ["csv"]},
    )
    assert response.status_code == 400


def test_the_api_creates_a_run_reads_it_and_lists_its_files(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        _, secret = services.create_api_key(Role.OWNER, "finance robot", [REPORTS_EXPORT])
        _, dashboards_only = services.create_api_key(Role.OWNER, "dashboards", [REPORTS_VIEW])
    headers = {"Authorization": f"Bearer {secret}"}
    refused = client.post(
        "/api/v1/reports/reconciliation/runs",
        json={"month": "2026-01"},
        headers={"Authorization": f"Bearer {dashboards_only}"},
    )
    assert refused.status_code == 403 and refused.json["code"] == "forbidden"  # type: ignore[index]
    created = client.post("/api/v1/reports/reconciliation/runs", json={"month": "2026-01"}, headers=headers)
    assert created.status_code == 201, created.json
    body = created.json
    assert body is not None
    assert body["status"] == "succeeded" and body["period_label"] == "2026-01"
    assert {name: body[name] for name in JANUARY} == JANUARY
    assert body["period_start"].startswith("2025-12-31T16:00:00")
    run = client.get(f"/api/v1/reports/reconciliation/runs/{body['id']}", headers=headers).json
    assert run is not None and run["net"] == 4736
    files = client.get(f"/api/v1/reports/reconciliation/runs/{body['id']}/files", headers=headers).json
    assert files is not None
    assert [f["format"] for f in files["items"]] == ["csv", "xlsx", "pdf"]
    assert all(len(f["sha256"]) == 64 for f in files["items"])
    listed = client.get("/api/v1/reports/reconciliation/runs", headers=headers).json
    assert listed is not None and [r["id"] for r in listed["items"]] == [body["id"]]
    invalid = client.post("/api/v1/reports/reconciliation/runs", json={"month": "2026-1"}, headers=headers)
    assert invalid.status_code == 422
    missing = client.get("/api/v1/reports/reconciliation/runs/12345", headers=headers)
    assert missing.status_code == 404 and missing.json["code"] == "not_found"  # type: ignore[index]
