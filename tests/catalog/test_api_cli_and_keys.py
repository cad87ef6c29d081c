"""The catalog through /api/v1 and the CLI, and the envelope encryption that guards the keys."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from catalog import inventory, keyring
from catalog.models import CardKey, TenantDataKey
from saas import crypto
from saas.extensions import db
from tenants import services as tenant_services
from tenants.roles import PERMISSIONS, Role
from tests.catalog.factories import card_keys_of, import_keys, key_lines, make_right, write_file
from tests.factories import Shop


def api_key(shop: Shop, scopes: list[str] | None = None) -> dict[str, str]:
    with shop.bound():
        _, secret = tenant_services.create_api_key(
            Role.OWNER, "erp", scopes if scopes is not None else list(PERMISSIONS)
        )
    return {"Authorization": f"Bearer {secret}"}


def test_rights_bundles_and_plans_through_the_api(client: FlaskClient, shop: Shop) -> None:
    headers = api_key(shop)
    right = client.post(
        "/api/v1/rights",
        json={"name": "腾讯视频VIP月卡", "kind": "card_key", "face_value": 3000, "unit_cost": 1850},
        headers=headers,
    )
    assert right.status_code == 201 and right.json["face_value"] == 3000  # type: ignore[index]
    right_id = right.json["id"]  # type: ignore[index]
    assert isinstance(right_id, str)
    bundle = client.post(
        "/api/v1/bundles",
        json={"name": "影音畅享包", "items": [{"right_id": right_id, "quantity": 2}]},
        headers=headers,
    )
    assert bundle.status_code == 201
    bundle_id = bundle.json["id"]  # type: ignore[index]
    plan = client.post(
        "/api/v1/plans",
        json={
            "bundle_id": bundle_id,
            "name": "月卡",
            "period_unit": "month",
            "price": 3990,
            "list_price": 6300,
        },
        headers=headers,
    )
    assert plan.status_code == 201 and plan.json["discount_percent"] == 37  # type: ignore[index]
    active = client.post(f"/api/v1/bundles/{bundle_id}/activate", headers=headers)
    assert active.json["status"] == "active" and active.json["items"][0]["quantity"] == 2  # type: ignore[index]
    snapshot = client.get(f"/api/v1/plans/{plan.json['id']}/snapshot", headers=headers).json  # type: ignore[index]
    assert (
        snapshot["plan"]["price"] == 3990
        and snapshot["bundle"]["items"][0]["right"]["name"] == "腾讯视频VIP月卡"
    )
    listed = client.get("/api/v1/rights?q=腾讯", headers=headers).json
    assert [r["id"] for r in listed["items"]] == [right_id]  # type: ignore[index]
    bad = client.post(
        "/api/v1/plans",
        json={"bundle_id": bundle_id, "name": "x", "period_unit": "month", "price": 100, "list_price": 50},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json["code"] == "invalid"  # type: ignore[index]


def test_an_import_through_the_api_with_preview_status_and_rejection_report(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        right_id = str(make_right().id)
    headers = api_key(shop)
    content = "\n".join([*key_lines(5), "broken line"]).encode()
    created = client.post(
        "/api/v1/inventory/imports",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "file": (io.BytesIO(content), "keys.txt"),
            "right_id": right_id,
            "supplier": "API 供应商",
            "unit_cost": "9.90",
        },
    )
    assert created.status_code == 201, created.json
    body: dict[str, Any] = created.json  # type: ignore[assignment]
    assert body["status"] == "uploaded" and body["preview_counts"]["imported"] == 5
    assert body["preview_counts"]["rejected"] == 1
    confirmed = client.post(
        f"/api/v1/inventory/imports/{body['id']}/confirm", json={"on_reject": "skip"}, headers=headers
    ).json
    assert confirmed["status"] == "imported" and confirmed["counts"]["imported"] == 5  # type: ignore[index]
    report = client.get(body["rejection_report"], headers=headers).json
    assert report == {
        "items": [{"line": 6, "reason": "expected 2 columns, found 1"}],
        "total": 1,
        "truncated": False,
    }
    stock = client.get(f"/api/v1/rights/{right_id}/stock", headers=headers).json
    assert stock["available"] == 5 and stock["value_at_cost"] == {"CNY": 4950}  # type: ignore[index]
    keys = client.get(f"/api/v1/card-keys?right_id={right_id}", headers=headers).json["items"]  # type: ignore[index]
    assert len(keys) == 5 and all("••••••" in k["mask"] for k in keys)
    assert "secret" not in keys[0] and "ciphertext" not in keys[0]
    again = client.post(f"/api/v1/inventory/imports/{body['id']}/confirm", json={}, headers=headers)
    assert again.status_code == 409


def test_an_api_key_without_inventory_scope_cannot_import(client: FlaskClient, shop: Shop) -> None:
    response = client.post("/api/v1/inventory/imports", headers=api_key(shop, ["catalog.view"]), data={})
    assert response.status_code == 403


def test_the_cli_imports_a_file_with_progress(runner: Any, shop: Shop, tmp_path: Path) -> None:
    with shop.bound():
        right_id = make_right().id
    path = write_file(
        tmp_path,
        "供货.csv",
        "卡号,卡密\n" + "\n".join(line.replace("----", ",") for line in key_lines(30)),
        encoding="gbk",
    )
    result = runner.invoke(
        args=[
            "inventory",
            "import",
            str(path),
            "--tenant",
            shop.slug,
            "--right",
            str(right_id),
            "--supplier",
            "深圳卡盟供货商",
            "--unit-cost",
            "12.50",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Importing 供货.csv" in result.output and "imported" in result.output
    with shop.bound():
        assert len(card_keys_of(db.session.get(inventory.Right, (shop.tenant.id, right_id)))) == 30  # type: ignore[arg-type]


def test_the_cli_reports_an_aborted_import_and_exits_non_zero(
    runner: Any, shop: Shop, tmp_path: Path
) -> None:
    with shop.bound():
        right_id = make_right().id
    path = write_file(tmp_path, "k.txt", "\n".join([*key_lines(3), "oops"]))
    result = runner.invoke(
        args=[
            "inventory",
            "import",
            str(path),
            "--tenant",
            shop.slug,
            "--right",
            str(right_id),
            "--supplier",
            "x",
            "--unit-cost",
            "1",
            "--on-reject",
            "abort",
        ]
    )
    assert result.exit_code != 0 and "nothing was imported" in result.output
    assert (
        Path(f"{path}.rejections.csv").read_text(encoding="utf-8-sig").splitlines()[1]
        == '4,"expected 2 columns, found 1"'
    )
    with shop.bound():
        assert db.session.scalars(select(CardKey)).all() == []


def test_a_ciphertext_copied_to_another_right_or_tenant_does_not_decrypt(
    shop: Shop, other_shop: Shop
) -> None:
    with shop.bound():
        right, other_right = make_right(), make_right("QQ音乐绿钻")
        import_keys(right, ["CARD-1----SECRET-1"])
        (key,) = card_keys_of(right)
        stolen = bytes(key.ciphertext)
        with pytest.raises(crypto.CryptoError):
            keyring.cipher_for(other_right.id).decrypt(stolen)
        assert keyring.cipher_for(right.id).decrypt(stolen) == b"CARD-1\x1fSECRET-1"
        same_right_id = right.id
    with other_shop.bound():
        make_right()
        with pytest.raises(crypto.CryptoError):
            keyring.cipher_for(same_right_id).decrypt(stolen)  # same right id, other tenant's key and binding


def test_rotating_the_master_key_rewraps_data_keys_and_keys_still_open(
    app: Flask, runner: Any, shop: Shop
) -> None:
    with shop.bound():
        right = make_right()
        import_keys(right, ["CARD-9----SECRET-9"])
        key_id, right_id = card_keys_of(right)[0].id, right.id
    old = app.config["QUANYI_MASTER_KEY"]
    new = base64.b64encode(b"n" * 32).decode()
    app.config["QUANYI_MASTER_KEY"] = new
    refused = runner.invoke(args=["keys", "rotate-master", "--old-key", base64.b64encode(b"x" * 32).decode()])
    assert refused.exit_code != 0 and "neither the old nor the new" in refused.output
    result = runner.invoke(args=["keys", "rotate-master", "--old-key", old])
    assert result.exit_code == 0, result.output
    assert "Rewrapped 2 data keys" in result.output
    with shop.bound():
        fingerprints = set(db.session.scalars(select(TenantDataKey.master_key_id)))
    assert fingerprints == {crypto.key_fingerprint(base64.b64decode(new))}
    with shop.bound():
        key = db.session.get(CardKey, (shop.tenant.id, key_id))
        assert key is not None and inventory.reveal_key(key) == "CARD-9 SECRET-9"
        assert right_id == key.right_id
    again = runner.invoke(args=["keys", "rotate-master", "--old-key", old])
    assert "2 were already current" in again.output


def test_a_wrong_master_key_cannot_open_the_data_keys(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_right()
        app.config["QUANYI_MASTER_KEY"] = base64.b64encode(b"w" * 32).decode()
        keyring._cache.clear()
        with pytest.raises(crypto.CryptoError):
            keyring.cipher_for(1)
