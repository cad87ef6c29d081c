"""Demo catalog: realistic rights, bundles with plans, and card keys imported through the real import."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from catalog import inventory, services
from catalog.models import CODE_ALPHABET, Right
from tenants.models import Tenant

DEMO_RIGHTS = [
    {
        "name": "腾讯视频VIP月卡",
        "provider": "腾讯视频",
        "kind": "card_key",
        "face_value": 3000,
        "unit_cost": 1850,
        "validity_days": 31,
    },
    {
        "name": "QQ音乐绿钻月卡",
        "provider": "QQ音乐",
        "kind": "card_key",
        "face_value": 1800,
        "unit_cost": 1100,
        "validity_days": 31,
    },
    {
        "name": "爱奇艺黄金会员共享号",
        "provider": "爱奇艺",
        "kind": "card_key",
        "face_value": 2500,
        "unit_cost": 3000,
        "validity_days": 31,
        "reusable": True,
        "max_deliveries": 5,
    },
    {
        "name": "美团外卖红包 ¥15",
        "provider": "美团",
        "kind": "code",
        "face_value": 1500,
        "unit_cost": 600,
        "validity_days": 30,
        "code_prefix": "MT",
        "code_length": 10,
    },
    {
        "name": "网易云音乐黑胶VIP直充",
        "provider": "网易云音乐",
        "kind": "topup",
        "face_value": 1500,
        "unit_cost": 1150,
        "validity_days": 31,
        # The demo supplier answers at once and tops nothing up (orders.topup.DemoSupplierAdapter).
        "topup_settings": {"adapter": "demo", "product_code": "NCM-VIP-1M", "account_type": "mobile"},
    },
    {
        "name": "喜马拉雅会员兑换页",
        "provider": "喜马拉雅",
        "kind": "link",
        "face_value": 1800,
        "unit_cost": 900,
        "validity_days": 31,
        "link_url": "https://example.com/ximalaya/redeem",
    },
]

PlanRow = tuple[str, str, int | None, int, int | None, bool]
# 亲情共享 in the demo: the music-and-audiobooks month plan (a top-up and a link, both shareable).
FAMILY_DEMO_PLANS = {("听书音乐包", "月卡")}
DEMO_BUNDLES: list[tuple[str, str, str, list[tuple[str, int]], list[PlanRow]]] = [
    (
        "影音畅享包",
        "腾讯视频 + QQ音乐 + 外卖红包，每月一份。",
        "视频音乐外卖 一包搞定",
        [("腾讯视频VIP月卡", 1), ("QQ音乐绿钻月卡", 1), ("美团外卖红包 ¥15", 2)],
        [
            ("月卡", "month", None, 3990, 6300, True),
            ("季卡", "quarter", None, 10990, 18900, True),
            ("年卡", "year", None, 39900, 75600, True),
        ],
    ),
    (
        "听书音乐包",
        "网易云黑胶 + 喜马拉雅。",
        "耳朵的权益",
        [("网易云音乐黑胶VIP直充", 1), ("喜马拉雅会员兑换页", 1)],
        [("月卡", "month", None, 2590, 3300, True), ("7天体验", "days", 7, 590, None, False)],
    ),
]


def _demo_key_file(count: int, directory: Path) -> Path:
    path = directory / "demo-keys.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("卡号,卡密\n")
        for _n in range(count):
            card = "".join(secrets.choice("0123456789") for _i in range(16))
            secret = "".join(secrets.choice(CODE_ALPHABET) for _i in range(12))
            out.write(f"{card},{secret}\n")
    return path


def create_demo_catalog(tenant: Tenant) -> None:
    """Demo step: rights, two active bundles with plans, and a few hundred imported card keys."""
    rights: dict[str, Right] = {}
    for fields in DEMO_RIGHTS:
        rights[str(fields["name"])] = services.create_right(dict(fields))
    for name, description, cover, items, plans in DEMO_BUNDLES:
        bundle = services.create_bundle({"name": name, "description": description, "cover_text": cover})
        services.set_bundle_items(bundle, [(rights[right].id, quantity) for right, quantity in items])
        for position, (plan_name, unit, days, price, list_price, renewable) in enumerate(plans):
            services.create_plan(
                bundle,
                {
                    "name": plan_name,
                    "period_unit": unit,
                    "period_days": days,
                    "price": price,
                    "list_price": list_price,
                    "currency": "CNY",
                    "renewable": renewable,
                    "purchase_limit": 1,
                    "family_sharing": (name, plan_name) in FAMILY_DEMO_PLANS,
                    "position": position,
                },
            )
        services.change_bundle_status(bundle, "active")
    with tempfile.TemporaryDirectory() as folder:
        for right_name, count, supplier, cost in (
            ("腾讯视频VIP月卡", 300, "深圳卡盟供货商", "18.50"),
            ("QQ音乐绿钻月卡", 200, "杭州数娱科技", "11.00"),
            ("爱奇艺黄金会员共享号", 20, "共享号批发", "30.00"),
        ):
            right = rights[right_name]
            services.set_low_stock_threshold(right, 50 if count > 100 else 5)
            inventory.import_local_file(
                _demo_key_file(count, Path(folder)),
                right_id=right.id,
                supplier=supplier,
                unit_cost=cost,
                imported_by="demo",
            )
