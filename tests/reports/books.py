"""A small tenant whose January 2026 books are known by construction (Asia/Shanghai, CNY, minor units).

Channel "tmall" charges 2.50 % + ¥0.30 per order; the "shop" channel has no channel row, so no fee.

- A-1, tmall: 1 × 19.90 video, paid 2026-01-10 12:00 → January; fee 0.50 + 0.30 = 0.80; cost 8.00.
- B-2, tmall: 2 × 19.90 video + 1 × 9.90 music, paid 2026-01-31 23:30 (15:30 UTC, the month's last
  half hour) → January; fee 1.24 + 0.30 = 1.54, spread 1.23 + 0.31 over its lines; cost 16.00 + 5.00.
- C-3, shop: 1 × 19.90 video, paid 2026-02-01 00:10 (still 31 January in UTC) → February; no fee.
- D-4, tmall: 1 × 19.90 video, paid 2025-12-31 23:59 → December.

Refunds: D-4 in full (19.90) on 2026-01-15 → January; A-1 in full (19.90) on 2026-02-05 → February.

January: 2 orders, 3 detail lines + 1 refund; gross 19.90 + 49.70 = 69.60; refunds 19.90; fees 0.80 + 1.54
= 2.34; net 69.60 − 19.90 − 2.34 = 47.36; cost of goods 8.00 + 16.00 + 5.00 = 29.00; gross profit 18.36.
Keys by batch: the video batch 3 keys (24.00), the music batch 1 key (5.00).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import reports.models  # noqa: F401  (every reports table exists before a PostgreSQL test database is made)
from integrations.models import Channel
from orders import refunds, services
from orders.models import Order
from saas.timeutil import frozen_time
from tests.factories import Shop
from tests.orders.factories import Product, add_keys, make_product, make_right, order_request
from tests.reports.dashboard_fixtures import connect_channel

SHANGHAI = ZoneInfo("Asia/Shanghai")
JANUARY = {
    "order_count": 2,
    "line_count": 4,
    "refund_count": 1,
    "gross": 6960,
    "refunds": 1990,
    "fees": 234,
    "net": 4736,
    "cost_of_goods": 2900,
    "gross_profit": 1836,
}
FEBRUARY = {
    "order_count": 1,
    "line_count": 2,
    "refund_count": 1,
    "gross": 1990,
    "refunds": 1990,
    "fees": 0,
    "net": 0,
    "cost_of_goods": 800,
    "gross_profit": -800,
}


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class Books:
    video: Product
    music: Product
    orders: dict[str, int]
    channel_public_id: str


def make_channel(public_id: str = "tmall", fee_percent_bp: int = 250, fee_fixed: int = 30) -> Channel:
    return connect_channel(public_id, "天猫旗舰店", fee_percent_bp=fee_percent_bp, fee_fixed=fee_fixed)


def _paid_order(
    products: list[tuple[Product, int]], external_id: str, channel: str, at: dt.datetime
) -> Order:
    first = products[0][0]
    request = order_request(first, external_id, paid=True, channel=channel)
    request.lines = [services.LineRequest(p.plan.id, quantity) for p, quantity in products]
    with frozen_time(at):
        outcome = services.create_order(request)
    return outcome.order  # type: ignore[return-value]


def refund_in_full(order_id: int, at: dt.datetime, reason: str = "客户申请退款") -> None:
    with frozen_time(at):
        refunds.refund(refunds.RefundRequest(order_id=order_id, reason=reason))


def make_january_books(shop: Shop) -> Books:
    """Build the books in the table above, inside `shop` (bound by the caller)."""
    channel = make_channel()
    video = make_product(make_right("视频月卡"), price=1990)
    music = make_product(make_right("音乐月卡"), price=990)
    add_keys(video.right, 10, prefix="V", unit_cost=800)
    add_keys(music.right, 10, prefix="M", unit_cost=500)
    orders = {
        "A-1": _paid_order([(video, 1)], "A-1", channel.public_id, local(2026, 1, 10, 12)).id,
        "B-2": _paid_order([(video, 2), (music, 1)], "B-2", channel.public_id, local(2026, 1, 31, 23, 30)).id,
        "C-3": _paid_order([(video, 1)], "C-3", "shop", local(2026, 2, 1, 0, 10)).id,
        "D-4": _paid_order([(video, 1)], "D-4", channel.public_id, local(2025, 12, 31, 23, 59)).id,
    }
    refund_in_full(orders["D-4"], local(2026, 1, 15, 9))
    refund_in_full(orders["A-1"], local(2026, 2, 5, 9))
    return Books(video, music, orders, channel.public_id)
