"""Catalog factories: rights, bundles, plans, uploads and card keys imported through the real import path.

Call them with a tenant bound (`with shop.bound():`).
"""

from __future__ import annotations

import io
import itertools
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog import inventory, keyring, services
from catalog.fileformats import KeyRow, mask
from catalog.importing import ImportOutcome
from catalog.models import Bundle, CardKey, CardKeyBatch, Plan, Right
from saas.extensions import db

_serial = itertools.count(1)


def make_right(name: str = "腾讯视频VIP月卡", kind: str = "card_key", **fields: Any) -> Right:
    fields.setdefault("provider", "腾讯视频")
    fields.setdefault("face_value", 3000)
    fields.setdefault("unit_cost", 1850)
    if kind == "link":
        fields.setdefault("link_url", "https://example.com/redeem")
    if kind == "topup":
        fields.setdefault("topup_settings", {"adapter": "generic", "product_code": "VIP-1M"})
    return services.create_right({"name": name, "kind": kind, **fields})


def make_bundle(name: str = "影音畅享包", rights: list[tuple[Right, int]] | None = None) -> Bundle:
    bundle = services.create_bundle({"name": name, "description": "视频 + 音乐", "cover_text": "一包搞定"})
    if rights:
        services.set_bundle_items(bundle, [(right.id, quantity) for right, quantity in rights])
    return bundle


def make_plan(bundle: Bundle, name: str = "月卡", price: int = 3990, **fields: Any) -> Plan:
    fields.setdefault("period_unit", "month")
    fields.setdefault("list_price", 6300)
    return services.create_plan(bundle, {"name": name, "price": price, **fields})


def key_lines(count: int, prefix: str = "CARD") -> list[str]:
    """Return `count` distinct `card----secret` lines."""
    start = next(_serial) * 1_000_000
    return [f"{prefix}{start + n:012d}----S{start + n:015d}X" for n in range(count)]


def write_file(folder: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def import_keys(
    right: Right,
    lines: list[str] | None = None,
    *,
    folder: Path | None = None,
    count: int = 5,
    supplier: str = "深圳卡盟供货商",
    unit_cost: str = "12.50",
    **options: Any,
) -> ImportOutcome:
    """Import card keys into `right` through the product's import path; returns the outcome."""
    lines = lines if lines is not None else key_lines(count)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_file(folder or Path(tmp), f"keys-{next(_serial)}.txt", "\n".join(lines) + "\n")
        expires_on = options.pop("expires_on", None)
        return inventory.import_local_file(
            path,
            right_id=right.id,
            supplier=supplier,
            unit_cost=unit_cost,
            expires_on=expires_on,
            options=options,
        )


def card_keys_of(right: Right) -> list[CardKey]:
    return list(db.session.scalars(select(CardKey).where(CardKey.right_id == right.id).order_by(CardKey.id)))


def make_upload(right: Right, content: str = "", filename: str = "keys.txt") -> str:
    """Upload a file for preview (not imported yet); return its token."""
    content = content or "\n".join(key_lines(3)) + "\n"
    upload = inventory.start_upload(
        io.BytesIO(content.encode()),
        filename,
        right_id=right.id,
        supplier="深圳卡盟供货商",
        unit_cost="12.50",
    )
    return upload.token


# ---------------------------------------------------------------- plain rows (no audit), for the route tests
# The route-wide tests count audit rows around requests, so the objects they need are added directly.


def right_row(kind: str = "card_key") -> Right:
    right = Right(name="路由测试权益", kind=kind, link_url="https://example.com/x" if kind == "link" else "")
    db.session.add(right)
    db.session.commit()
    return right


def bundle_row() -> Bundle:
    bundle = Bundle(name="路由测试权益包", status="draft")
    db.session.add(bundle)
    db.session.commit()
    return bundle


def plan_row() -> Plan:
    plan = Plan(bundle_id=bundle_row().id, name="月卡", period_unit="month", price=990)
    db.session.add(plan)
    db.session.commit()
    return plan


def batch_row(right: Right | None = None) -> CardKeyBatch:
    right = right or right_row()
    batch = CardKeyBatch(right_id=right.id, supplier="fixture", unit_cost=100, currency="CNY")
    db.session.add(batch)
    db.session.commit()
    return batch


def card_key_row(secret: str = "ROUTE-FIXTURE-KEY-0001") -> CardKey:
    batch = batch_row()
    keyring.ensure_tenant_keys()
    cipher = keyring.cipher_for(batch.right_id)
    row = KeyRow(1, "", secret, None)
    key = CardKey(
        right_id=batch.right_id,
        batch_id=batch.id,
        code_hash=cipher.lookup_hash(secret.encode()),
        ciphertext=cipher.encrypt(row.payload()),
        mask=mask(secret),
    )
    db.session.add(key)
    db.session.commit()
    return key
