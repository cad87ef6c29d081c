"""Demo data for orders: customers and a few dozen paid orders, fulfilled from the demo stock, some redeemed,
one refunded."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select

from catalog.models import Bundle, Plan
from orders import redemption, refunds, services
from orders.models import Grant
from orders.topup import DEMO_FAILING_ACCOUNT
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import Tenant

DEMO_CUSTOMERS = (
    ("李雷", "lilei@example.com", "13800000001"),
    ("韩梅梅", "hanmeimei@example.com", "13800000002"),
    ("王小明", "wangxm@example.com", "13800000003"),
    ("Zhang Wei", "zhang.wei@example.com", None),
    ("陈静", None, "13900000005"),
    ("刘洋", "liuyang@example.com", "13900000006"),
    ("Emily Chen", "emily@example.com", None),
    ("赵磊", "zhaolei@example.com", "13700000008"),
)
DEMO_ORDERS = 36


def add_demo_orders(tenant: Tenant) -> None:
    """Demo step: paid orders over the last weeks for the demo customers (needs the catalog's demo plans)."""
    plans = list(
        db.session.scalars(
            select(Plan)
            .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
            .where(Bundle.status == "active")
            .order_by(Plan.id)
        )
    )
    if not plans:
        return
    rng = random.Random(20260101)
    now = utcnow()
    order_ids = []
    for number in range(DEMO_ORDERS):
        name, email, phone = DEMO_CUSTOMERS[number % len(DEMO_CUSTOMERS)]
        plan = rng.choice(plans)
        placed = now - dt.timedelta(days=rng.randint(0, 45), minutes=rng.randint(0, 1440))
        with frozen_time(placed):
            outcome = services.create_order(
                services.OrderRequest(
                    channel=rng.choice(["shop", "shop", "taobao", "wechat"]),
                    external_id=f"DEMO-{1000 + number}",
                    source="demo",
                    customer=services.CustomerInfo(email, phone, name),
                    lines=[services.LineRequest(plan.id)],
                    paid=True,
                    payment_reference=f"PAY{rng.randint(10**8, 10**9)}",
                    actor="demo data",
                )
            )
        order_ids.append(outcome.order.id)
    delivered = list(
        db.session.scalars(select(Grant.id).where(Grant.status == "delivered").order_by(Grant.id))
    )
    for grant_id in delivered[: len(delivered) // 2]:
        redemption.redeem_grant(
            grant_id, source=rng.choice(["customer", "supplier_report", "api"]), actor="demo data"
        )
    refunds.refund(
        refunds.RefundRequest(order_id=order_ids[-1], reason="客户误购，全额退款（演示）", actor="demo data")
    )
    _add_failed_topup_example(plans)


def _add_failed_topup_example(plans: list[Plan]) -> None:
    """Add the demo's one failed top-up, labelled as a deliberate example (the others succeed)."""
    topup_plans = [
        plan
        for plan in plans
        if any(item["right"]["kind"] == "topup" for item in plan.snapshot()["bundle"]["items"])
    ]
    if not topup_plans:
        return
    services.create_order(
        services.OrderRequest(
            channel="shop",
            external_id="DEMO-FAILED-TOPUP",
            source="demo",
            customer=services.CustomerInfo(None, DEMO_FAILING_ACCOUNT, "演示：失败示例"),
            lines=[services.LineRequest(topup_plans[0].id)],
            paid=True,
            note="演示数据中有意保留的直充失败示例 (a deliberate failed top-up example of the demo data)",
            actor="demo data",
        )
    )
