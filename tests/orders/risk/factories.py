"""Plain rows for the route tests: a held order, a flag, a blocklist entry (no audit trail)."""

from __future__ import annotations

from orders.risk.models import BlocklistEntry, RiskFlag
from saas.extensions import db
from saas.ids import new_id
from tests.orders.factories import order_row


def held_order_row() -> int:
    """A paid order held by risk control (its grants exist from the fixture; nothing else matters here)."""
    order = order_row()
    order.status, order.hold_reason, order.fulfilled_at = "held", "fixture hold", None
    db.session.commit()
    return order.id


def flag_row() -> int:
    flag = RiskFlag(kind="plan_burst", dedupe_key=f"fixture:{new_id()}", reason="fixture")
    db.session.add(flag)
    db.session.commit()
    return flag.id


def block_row() -> int:
    entry = BlocklistEntry(kind="email", value=f"b{new_id()}@example.test", reason="fixture", added_by="t")
    db.session.add(entry)
    db.session.commit()
    return entry.id
