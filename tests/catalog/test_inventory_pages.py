"""Operators import, watch, void and (with permission) reveal card keys in the back office."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from catalog import inventory, services, stock, tasks
from catalog.models import CardKey, CardKeyBatch, Right
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import AuditEvent, JobRun
from tests.catalog.factories import card_keys_of, import_keys, key_lines, make_right
from tests.factories import Outbox, Shop, login


def upload(client: FlaskClient, shop: Shop, right_id: int, content: bytes, filename: str = "keys.txt") -> Any:
    return client.post(
        f"/t/{shop.slug}/catalog/inventory/import",
        data={
            "right_id": str(right_id),
            "supplier": "杭州数娱科技",
            "unit_cost": "12.50",
            "currency": "CNY",
            "file": (io.BytesIO(content), filename),
        },
        content_type="multipart/form-data",
    )


def audit_actions(shop: Shop, prefix: str) -> list[str]:
    with shop.bound():
        return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.startswith(prefix))))


def test_upload_preview_then_import(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right_id = make_right().id
        import_keys(db.session.get(Right, (shop.tenant.id, right_id)), ["IN-STOCK-0001----PW1"])  # type: ignore[arg-type]
    login(client, shop.members["operator"])
    content = (
        "卡号----卡密\nNEW-CARD-0001----PW-A\nNEW-CARD-0002----PW-B\n"
        "NEW-CARD-0001----PW-A\nIN-STOCK-0001----PW1\n"
    )
    response = upload(client, shop, right_id, content.encode("gbk"), "供应商.txt")
    assert response.status_code == 302
    preview_url = response.headers["Location"]
    page = client.get(preview_url).get_data(as_text=True)
    assert 'data-testid="format">text, gb18030, separator' in page and "header row" in page
    assert "NEW-CARD-0001" not in page and "PW-A" not in page  # masked even in the preview
    assert "2 new keys, 1 duplicates in the file, 1 already in stock, 0 rejected" in page
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(CardKey)) == 1  # nothing imported yet
    done = client.post(
        preview_url,
        data={"action": "import", "on_reject": "skip", "card_column": "0", "secret_column": "1"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert 'data-testid="import-state">Imported' in done
    with shop.bound():
        batch = db.session.scalars(select(CardKeyBatch).where(CardKeyBatch.supplier == "杭州数娱科技")).one()
        assert (batch.rows_read, batch.imported, batch.duplicates_in_file, batch.duplicates_in_stock) == (
            4,
            2,
            1,
            1,
        )
        assert batch.source_filename == "供应商.txt" and len(batch.source_checksum) == 64
        assert batch.imported_by == shop.members["operator"].email and batch.unit_cost == 1250
    assert (
        client.post(preview_url, data={"action": "import"}).status_code == 302
    )  # a second click does nothing
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(CardKeyBatch)) == 2


def test_the_operator_chooses_abort_and_downloads_the_rejection_report(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        right_id = make_right().id
    login(client, shop.members["operator"])
    lines = key_lines(20)
    lines[7] = "garbage-without-separator"
    preview_url = upload(client, shop, right_id, "\n".join(lines).encode()).headers["Location"]
    page = client.post(preview_url, data={"action": "import", "on_reject": "abort"}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert 'data-testid="import-state">Aborted' in text and "nothing was imported" in text
    report_url = re.search(r'href="([^"]+rejections.csv)"', text)
    assert report_url is not None
    report = client.get(report_url.group(1))
    assert report.mimetype == "text/csv"
    assert report.get_data().decode("utf-8-sig").splitlines() == [
        "line,reason",
        '8,"expected 2 columns, found 1"',
    ]
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(CardKey)) == 0
        assert db.session.scalar(select(func.count()).select_from(CardKeyBatch)) == 0
    again = client.post(preview_url, data={"action": "import", "on_reject": "skip"}, follow_redirects=True)
    assert 'data-testid="import-state">Imported' in again.get_data(as_text=True)
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(CardKey)) == 19


def test_an_empty_or_binary_upload_is_refused_at_once(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right_id = make_right().id
    login(client, shop.members["operator"])
    for content, message in ((b"", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text")):
        page = upload(client, shop, right_id, content)
        assert page.status_code == 200 and message in page.get_data(as_text=True)


def test_a_big_import_runs_as_a_job_with_progress(app: Flask, client: FlaskClient, shop: Shop) -> None:
    app.config["CATALOG_IMPORT_INLINE_ROWS"] = 100
    with shop.bound():
        right_id = make_right().id
    login(client, shop.members["operator"])
    preview_url = upload(client, shop, right_id, "\n".join(key_lines(1000)).encode()).headers["Location"]
    assert "Counted over the first rows only" in client.get(preview_url).get_data(as_text=True)
    client.post(preview_url, data={"action": "import"})
    with shop.bound():
        run = db.session.scalars(select(JobRun).where(JobRun.kind == "inventory.import")).one()
        assert run.status == "succeeded" and run.result["imported"] == 1000
        assert len(card_keys_of(db.session.get(Right, (shop.tenant.id, right_id)))) == 1000  # type: ignore[arg-type]
    status = client.get(f"/t/{shop.slug}/jobs/{run.id}.json").get_json()
    assert status["progress"] == 100 and status["finished"]


def test_keys_are_masked_everywhere_and_revealed_one_at_a_time_with_an_audit_row(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, ["6212260000001234----TOP-SECRET-PW"])
        (key,) = card_keys_of(right)
        key_id, right_id = key.id, right.id
    login(client, shop.members["operator"])
    for path in ("inventory", "inventory/keys", f"rights/{right_id}"):
        page = client.get(f"/t/{shop.slug}/catalog/{path}").get_data(as_text=True)
        assert "TOP-SECRET-PW" not in page and "6212260000001234" not in page
    listing = client.get(f"/t/{shop.slug}/catalog/inventory/keys").get_data(as_text=True)
    assert "6212••••••1234" in listing and "data-reveal-url" in listing
    revealed = client.post(f"/t/{shop.slug}/catalog/inventory/keys/{key_id}/reveal")
    assert revealed.get_json() == {"value": "6212260000001234 TOP-SECRET-PW"}
    assert audit_actions(shop, "inventory.key_revealed") == ["inventory.key_revealed"]


@pytest.mark.parametrize("role", ["finance", "analyst", "support"])
def test_reveal_without_permission_is_403_and_leaves_no_audit_row(
    client: FlaskClient, shop: Shop, role: str
) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, ["CARD-0001----SECRET-0001"])
        key_id = card_keys_of(right)[0].id
    login(client, shop.members[role])
    response = client.post(f"/t/{shop.slug}/catalog/inventory/keys/{key_id}/reveal")
    assert response.status_code == 403
    assert b"SECRET-0001" not in response.get_data()
    assert audit_actions(shop, "inventory.key_revealed") == []
    assert "data-reveal-url" not in client.get(f"/t/{shop.slug}/catalog/inventory/keys").get_data(
        as_text=True
    )


def test_voiding_one_key_a_batch_or_a_filter_needs_a_reason(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right = make_right()
        first = import_keys(right, count=3)
        second = import_keys(right, count=4)
        one_key = card_keys_of(right)[0].id
        right_id = right.id
    login(client, shop.members["operator"])
    base = f"/t/{shop.slug}/catalog/inventory"
    no_reason = client.post(f"{base}/keys/{one_key}/void", data={"reason": ""}, follow_redirects=True)
    assert "Say why" in no_reason.get_data(as_text=True)
    client.post(f"{base}/keys/{one_key}/void", data={"reason": "supplier recalled it"})
    client.post(f"{base}/batches/{second.batch_id}/void", data={"reason": "batch leaked"})
    with shop.bound():
        statuses = [k.status for k in card_keys_of(db.session.get(Right, (shop.tenant.id, right_id)))]  # type: ignore[arg-type]
        assert statuses.count("void") == 5 and statuses.count("available") == 2
    client.post(
        f"{base}/keys/void",
        data={"right_id": str(right_id), "batch_id": str(first.batch_id), "reason": "clearing out"},
    )
    with shop.bound():
        keys = card_keys_of(db.session.get(Right, (shop.tenant.id, right_id)))  # type: ignore[arg-type]
        assert {k.status for k in keys} == {"void"}
        assert {k.void_reason for k in keys} == {"supplier recalled it", "batch leaked", "clearing out"}
    assert sorted(audit_actions(shop, "inventory.")) == sorted(
        [
            "inventory.imported",
            "inventory.imported",
            "inventory.key_voided",
            "inventory.batch_voided",
            "inventory.keys_voided",
        ]
    )


def test_stock_counts_value_and_days_of_cover(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, count=40, unit_cost="12.50")
        keys = card_keys_of(right)
        for key in keys[:6]:  # six deliveries in the last 30 days (the orders package does this for real)
            key.status, key.delivered_at = "delivered", utcnow() - dt.timedelta(days=3)
        keys[6].status = "reserved"
        db.session.commit()
        level = stock.stock_of(right)
        right_id = right.id
    assert level is not None
    assert (
        level.counts["available"] == 33 and level.counts["delivered"] == 6 and level.counts["reserved"] == 1
    )
    assert level.value_at_cost == {"CNY": 33 * 1250}
    assert level.days_of_cover == 165.0  # 33 keys at 6 per 30 days
    login(client, shop.members["analyst"])
    page = client.get(f"/t/{shop.slug}/catalog/rights/{right_id}").get_data(as_text=True)
    assert "¥412.50" in page and 'data-testid="days-of-cover">165.0' in page


def test_a_barely_selling_right_has_more_than_a_year_of_cover_not_a_huge_number(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, count=400)
        key = card_keys_of(right)[0]
        key.status, key.delivered_at = "delivered", utcnow() - dt.timedelta(days=3)  # one in 30 days
        db.session.commit()
        level = stock.stock_of(right)
        right_id = right.id
    assert level is not None and level.cover_beyond_a_year and level.days_of_cover == 365.0  # not 11970.0
    login(client, shop.members["analyst"])
    page = client.get(f"/t/{shop.slug}/catalog/rights/{right_id}?lang=zh_CN").get_data(as_text=True)
    assert 'data-testid="days-of-cover">超过一年' in page and "11970" not in page


def test_no_sales_means_no_days_of_cover(shop: Shop) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, count=3)
        level = stock.stock_of(right)
    assert level is not None and level.days_of_cover is None


def test_low_stock_alert_fires_once_and_clears_on_restock(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, count=12)
        services.set_low_stock_threshold(right, 10)
        keys = card_keys_of(right)
        for key in keys[:3]:
            key.status = "delivered"
        db.session.commit()
        assert stock.check_low_stock(right.id) == "fired"
        assert stock.check_low_stock(right.id) is None  # once, not on every allocation
        right_id = right.id
    (mail,) = outbox.messages()
    assert sorted(str(mail["To"]).split(", ")) == sorted(
        shop.members[r].email for r in ("owner", "admin", "operator")
    )
    assert "Low stock" in str(mail["Subject"]) and "9" in str(mail["Subject"])
    login(client, shop.members["support"])
    assert 'data-testid="low-stock-alert"' in client.get(f"/t/{shop.slug}/catalog/inventory").get_data(
        as_text=True
    )
    with shop.bound():
        import_keys(db.session.get(Right, (shop.tenant.id, right_id)), count=5)  # type: ignore[arg-type]
        assert db.session.get(Right, (shop.tenant.id, right_id)).low_stock_since is None  # type: ignore[union-attr]
    assert len(outbox.messages()) == 1
    assert 'data-testid="low-stock-alert"' not in client.get(f"/t/{shop.slug}/catalog/inventory").get_data(
        as_text=True
    )


def test_reusable_keys_count_every_delivery_they_have_left(shop: Shop) -> None:
    with shop.bound():
        right = make_right("爱奇艺共享号", reusable=True, max_deliveries=5)
        import_keys(right, count=2)
        keys = card_keys_of(right)
        keys[0].delivery_count = 3
        db.session.commit()
        assert [k.max_deliveries for k in keys] == [5, 5]
        assert stock.available_units(right.id) == 7


def test_the_hourly_job_expires_keys_everywhere_and_they_stop_counting(shop: Shop, other_shop: Shop) -> None:
    soon = (utcnow() + dt.timedelta(days=2)).strftime("%Y-%m-%d")
    later = (utcnow() + dt.timedelta(days=60)).strftime("%Y-%m-%d")
    for each in (shop, other_shop):
        with each.bound():
            right = make_right()
            import_keys(right, count=3, expires_on=soon)
            import_keys(right, count=2, expires_on=later)
    with frozen_time(utcnow() + dt.timedelta(days=5)):
        assert tasks.expire_card_keys_everywhere() == {"expired": 6}
        assert tasks.expire_card_keys_everywhere() == {"expired": 0}
    for each in (shop, other_shop):
        with each.bound():
            statuses = sorted(db.session.scalars(select(CardKey.status)))
            assert statuses == ["available", "available", "expired", "expired", "expired"]


def test_another_tenants_key_or_batch_is_not_found(client: FlaskClient, shop: Shop, other_shop: Shop) -> None:
    with other_shop.bound():
        right = make_right()
        outcome = import_keys(right, count=1)
        key_id = card_keys_of(right)[0].id
    login(client, shop.owner)
    assert client.post(f"/t/{shop.slug}/catalog/inventory/keys/{key_id}/reveal").status_code == 404
    assert client.get(f"/t/{shop.slug}/catalog/inventory/batches/{outcome.batch_id}").status_code == 404
    assert audit_actions(other_shop, "inventory.key_revealed") == []


def test_demo_data_brings_rights_bundles_and_imported_keys(runner: Any) -> None:
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    tenant = db.session.scalars(select(Tenant).where(Tenant.slug == "demo")).one()
    with tenant_bound(tenant.id):
        names = set(db.session.scalars(select(Right.name)))
        assert {"腾讯视频VIP月卡", "QQ音乐绿钻月卡", "美团外卖红包 ¥15"} <= names
        assert db.session.scalar(select(func.count()).select_from(CardKey)) >= 500
        assert inventory.import_batch_count() == 3
