"""Issuing a campaign's codes: exported once as a file for the partner (CSV or XLSX), audited, never shown
again in bulk; or one at a time through the partner API with an idempotency key."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from campaigns import services
from campaigns.models import Campaign, CampaignCode
from catalog.models import CODE_ALPHABET
from saas.extensions import db
from tenants import services as tenant_services
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.campaigns.factories import make_campaign
from tests.factories import Shop, login


def test_codes_are_random_without_look_alikes_and_stored_encrypted_and_hashed(shop: Shop) -> None:
    with shop.bound():
        codes = services.export_codes(make_campaign(units=200).id)
        assert len(set(codes)) == 200
        for code in codes:
            raw = code.replace("-", "")
            assert len(raw) == 16 and set(raw) <= set(CODE_ALPHABET)
            assert not set(raw) & set("0O1IL")
        rows = list(db.session.scalars(select(CampaignCode)))
        assert {bytes(r.code_hash) for r in rows} == {services.code_hash(c) for c in codes}
        stored = b"".join(bytes(r.code_ciphertext) + r.mask.encode() for r in rows)
        assert not any(code.encode() in stored or code.replace("-", "").encode() in stored for code in codes)
        assert sorted(services.reveal_code(r) for r in rows) == sorted(codes)


def test_the_codes_are_exported_once_as_a_csv_file_and_never_shown_again(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        campaign_id = make_campaign(units=5).id
    login(client, shop.members["operator"])
    url = f"/t/{shop.slug}/campaigns/{campaign_id}/export"
    response = client.post(url, data={"file_format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "Redemption code" and len(rows) == 6
    with shop.bound():
        assert {services.code_hash(r[0]) for r in rows[1:]} == {
            bytes(h) for h in db.session.scalars(select(CampaignCode.code_hash))
        }
    again = client.post(url, data={"file_format": "csv"}, follow_redirects=True)
    assert again.mimetype == "text/html" and "never shown again" in again.get_data(as_text=True)
    page = client.get(f"/t/{shop.slug}/campaigns/{campaign_id}").get_data(as_text=True)
    assert not any(r[0] in page for r in rows[1:])  # the page shows masks only
    with shop.bound():
        assert db.session.scalar(select(func.count()).where(AuditEvent.action == "campaign.exported")) == 1
        assert db.session.scalar(select(func.count()).select_from(CampaignCode)) == 5


def test_the_codes_can_be_exported_as_xlsx(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        campaign_id = make_campaign(units=3).id
    login(client, shop.owner)
    response = client.post(f"/t/{shop.slug}/campaigns/{campaign_id}/export", data={"file_format": "xlsx"})
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert values[0] == "Redemption code" and len(values) == 4


def partner_key(shop: Shop, scopes: list[str] | None = None) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "bank", scopes or ["campaigns.partner"])
    return {"Authorization": f"Bearer {secret}"}


def test_the_partner_api_issues_one_code_per_idempotency_key(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        campaign_id = make_campaign(units=2, issue_mode="api").id
    headers = partner_key(shop)
    url = f"/api/v1/campaigns/{campaign_id}/codes"
    first = client.post(url, json={"idempotency_key": "points-order-1"}, headers=headers)
    assert first.status_code == 201 and first.json["created"] is True  # type: ignore[index]
    repeat = client.post(url, json={"idempotency_key": "points-order-1"}, headers=headers)
    assert repeat.status_code == 201 and repeat.json["created"] is False  # type: ignore[index]
    assert repeat.json["code"] == first.json["code"]  # type: ignore[index]
    second = client.post(url, json={"idempotency_key": "points-order-2"}, headers=headers)
    assert second.status_code == 201 and second.json["code"] != first.json["code"]  # type: ignore[index]
    sold_out = client.post(url, json={"idempotency_key": "points-order-3"}, headers=headers)
    assert sold_out.status_code == 409 and "All 2 codes" in sold_out.json["message"]  # type: ignore[index]
    missing = client.post(url, json={}, headers=headers)
    assert missing.status_code == 422
    with shop.bound():
        found = db.session.get(Campaign, (shop.tenant.id, campaign_id))
        assert found is not None and found.issued_count == 2
        assert db.session.scalar(select(func.count()).select_from(CampaignCode)) == 2


def test_the_partner_api_needs_the_partner_scope_and_refuses_an_export_campaign(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        api_campaign_id = make_campaign(issue_mode="api").id
        export_campaign_id = make_campaign(issue_mode="export").id
    body = {"idempotency_key": "k1"}
    viewer = partner_key(shop, ["campaigns.view"])
    response = client.post(f"/api/v1/campaigns/{api_campaign_id}/codes", json=body, headers=viewer)
    assert response.status_code == 403
    refused = client.post(
        f"/api/v1/campaigns/{export_campaign_id}/codes", json=body, headers=partner_key(shop)
    )
    assert refused.status_code == 409


def test_the_partner_api_claims_a_code_for_its_customer_and_shows_the_figures(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        campaign_id = make_campaign(units=3, issue_mode="api").id
    headers = partner_key(shop, ["campaigns.partner", "campaigns.view"])
    code = client.post(
        f"/api/v1/campaigns/{campaign_id}/codes", json={"idempotency_key": "p-9"}, headers=headers
    ).json["code"]  # type: ignore[index]
    claim = client.post(
        "/api/v1/campaigns/claims", json={"code": code, "phone": "13800138000"}, headers=headers
    )
    assert claim.status_code == 201 and claim.json["outcome"] == "claimed"  # type: ignore[index]
    twice = client.post(
        "/api/v1/campaigns/claims", json={"code": code, "phone": "13800138000"}, headers=headers
    )
    assert twice.status_code == 409 and twice.json["code"] == "already_claimed"  # type: ignore[index]
    guess = client.post(
        "/api/v1/campaigns/claims", json={"code": "ABCD-EFGH", "phone": "13800138000"}, headers=headers
    )
    assert guess.status_code == 404 and guess.json["code"] == "unknown_code"  # type: ignore[index]
    figures: Any = client.get(f"/api/v1/campaigns/{campaign_id}", headers=headers).json
    assert (figures["issued"], figures["claimed"], figures["refused_claims"]) == (1, 1, 1)


def test_the_campaign_endpoints_are_in_the_openapi_document(app: Flask, client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]  # type: ignore[index]
    assert "post" in paths["/api/v1/campaigns/{campaign_id}/codes"]
    assert "post" in paths["/api/v1/campaigns/claims"]
