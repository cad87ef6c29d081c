"""Stock levels per right and the low-stock alert (fires once below the threshold, clears on restock).

`check_low_stock(right_id)` is the hook other packages call after they change stock (orders after
allocating); imports, voids and the expiry job call it too. It commits its own small change.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from catalog.models import KEY_STATUSES, CardKey, CardKeyBatch, Right
from saas.auth.models import User
from saas.events import publish
from saas.extensions import db
from saas.links import public_url
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Membership, Tenant
from tenants.outbox import queue_mail
from tenants.roles import Role
from tenants.scoping import current_tenant_id

SALES_WINDOW_DAYS = 30
# Beyond a year, days of cover stops being a figure anyone acts on (a right selling once a month with
# 15,000 keys showed 450555.0): it is shown as "more than a year" (超过一年).
COVER_CAP_DAYS = 365


def days_of_cover(available: int, delivered: int, window_days: int = SALES_WINDOW_DAYS) -> Decimal | None:
    """Return how many days `available` units last at `delivered` per `window_days` (None: none delivered).

    Uncapped; compare with COVER_CAP_DAYS (`beyond_a_year`) before showing it.
    """
    if delivered <= 0:
        return None
    return Decimal(available) * window_days / delivered


def beyond_a_year(cover: Decimal | float | None) -> bool:
    """Tell whether a days-of-cover figure is more than a year, shown as such rather than as a number."""
    return cover is not None and cover > COVER_CAP_DAYS


ALERT_ROLES = (Role.OWNER.value, Role.ADMIN.value, Role.OPERATOR.value)


@dataclass
class StockLevel:
    """One right's stock: keys by state, deliverable units, value at cost, sales rate and cover."""

    right: Right
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEY_STATUSES, 0))
    available_units: int = 0
    value_at_cost: dict[str, int] = field(default_factory=dict)  # currency -> minor units
    delivered_recently: int = 0

    @property
    def days_of_cover(self) -> float | None:
        """Return how many days the available stock lasts at the last 30 days' rate (None: no sales).

        At most COVER_CAP_DAYS: beyond it `cover_beyond_a_year` is true and pages say "more than a year".
        """
        cover = days_of_cover(self.available_units, self.delivered_recently)
        if cover is None:
            return None
        return float(min(cover, Decimal(COVER_CAP_DAYS)).quantize(Decimal("0.1"), ROUND_HALF_UP))

    @property
    def cover_beyond_a_year(self) -> bool:
        """Tell whether the stock lasts more than a year at the last 30 days' rate."""
        return beyond_a_year(days_of_cover(self.available_units, self.delivered_recently))

    @property
    def is_low(self) -> bool:
        """Tell whether the stock is below the right's alert threshold."""
        threshold = self.right.low_stock_threshold
        return threshold is not None and self.available_units < threshold


def available_units(right_id: int) -> int:
    """Return how many more deliveries the right's available keys allow (reusable keys count each use)."""
    remaining = db.session.scalar(
        select(func.coalesce(func.sum(CardKey.max_deliveries - CardKey.delivery_count), 0)).where(
            CardKey.right_id == right_id, CardKey.status == "available"
        )
    )
    return int(remaining or 0)


def stock_levels(rights: list[Right]) -> list[StockLevel]:
    """Return the stock of each card-key right given, in the same order."""
    levels = {right.id: StockLevel(right) for right in rights if right.kind == "card_key"}
    if not levels:
        return []
    ids = list(levels)
    for right_id, status, count, remaining in db.session.execute(
        select(
            CardKey.right_id,
            CardKey.status,
            func.count(),
            func.sum(CardKey.max_deliveries - CardKey.delivery_count),
        )
        .where(CardKey.right_id.in_(ids))
        .group_by(CardKey.right_id, CardKey.status)
    ):
        levels[right_id].counts[status] = int(count)
        if status == "available":
            levels[right_id].available_units = int(remaining or 0)
    _add_value_at_cost(levels)
    _add_recent_deliveries(levels)
    return list(levels.values())


def _add_value_at_cost(levels: dict[int, StockLevel]) -> None:
    rows = db.session.execute(
        select(
            CardKey.right_id,
            CardKeyBatch.unit_cost,
            CardKeyBatch.currency,
            CardKey.max_deliveries,
            func.sum(CardKey.max_deliveries - CardKey.delivery_count),
        )
        .join(
            CardKeyBatch,
            (CardKeyBatch.tenant_id == CardKey.tenant_id) & (CardKeyBatch.id == CardKey.batch_id),
        )
        .where(CardKey.right_id.in_(list(levels)), CardKey.status == "available")
        .group_by(CardKey.right_id, CardKeyBatch.unit_cost, CardKeyBatch.currency, CardKey.max_deliveries)
    )
    for right_id, unit_cost, currency, max_deliveries, remaining in rows:
        value = levels[right_id].value_at_cost
        # a reusable key's cost is spread over its deliveries
        value[currency] = value.get(currency, 0) + (unit_cost * int(remaining or 0)) // max(1, max_deliveries)


def _add_recent_deliveries(levels: dict[int, StockLevel]) -> None:
    since = utcnow() - dt.timedelta(days=SALES_WINDOW_DAYS)
    rows = db.session.execute(
        select(CardKey.right_id, func.count())
        .where(CardKey.right_id.in_(list(levels)), CardKey.delivered_at >= since)
        .group_by(CardKey.right_id)
    )
    for right_id, count in rows:
        levels[right_id].delivered_recently = int(count)


def stock_of(right: Right) -> StockLevel | None:
    """Return one right's stock (None for rights not delivered from inventory)."""
    levels = stock_levels([right])
    return levels[0] if levels else None


def low_stock_rights() -> list[Right]:
    """Return the rights whose low-stock alert is active, for the in-app banner."""
    return list(
        db.session.scalars(
            select(Right)
            .where(Right.low_stock_since.is_not(None), Right.archived_at.is_(None))
            .order_by(Right.name)
        )
    )


def check_low_stock(right_id: int) -> str | None:
    """Fire or clear a right's low-stock alert; return "fired", "cleared" or None. Commits.

    The alert fires once when available stock falls below the threshold (in-app and by mail to the
    owners, admins and operators) and clears when stock is back at or above it. The state change is a
    conditional UPDATE, so two processes racing here send one mail, not two.
    """
    right = db.session.get(Right, (current_tenant_id(), right_id))
    if right is None or right.kind != "card_key":
        return None
    available = available_units(right_id)
    threshold = right.low_stock_threshold
    below = threshold is not None and available < threshold
    if below and right.low_stock_since is None:
        if not _flip_alert(right_id, on=True):
            return None
        audit.record("inventory.low_stock", "right", right_id, available=available, threshold=threshold)
        db.session.commit()
        _mail_low_stock(right_id, available)
        publish(
            "stock.low",
            current_tenant_id(),
            {"right_id": str(right_id), "available": available, "threshold": threshold},
            key=f"stock.low:{right_id}:{utcnow().isoformat()}",
        )
        return "fired"
    if not below and right.low_stock_since is not None:
        if not _flip_alert(right_id, on=False):
            return None
        audit.record("inventory.restocked", "right", right_id, available=available, threshold=threshold)
        db.session.commit()
        return "cleared"
    db.session.commit()
    return None


def _flip_alert(right_id: int, *, on: bool) -> bool:
    condition = Right.low_stock_since.is_(None) if on else Right.low_stock_since.is_not(None)
    result = db.session.execute(
        update(Right)
        .where(Right.id == right_id, condition)
        .values(low_stock_since=utcnow() if on else None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def alert_recipients(tenant_id: int) -> list[str]:
    """Return the email addresses of the tenant's owners, admins and operators."""
    return list(
        db.session.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == tenant_id, Membership.role.in_(ALERT_ROLES))
            .order_by(User.email)
        )
    )


def _mail_low_stock(right_id: int, available: int) -> None:
    tenant_id = current_tenant_id()
    tenant = db.session.get(Tenant, tenant_id)
    right = db.session.get(Right, (tenant_id, right_id))
    if tenant is None or right is None:
        return
    link = public_url("catalog.inventory", tenant_slug=tenant.slug)
    queue_mail(
        alert_recipients(tenant_id),
        _("Low stock: %(right)s (%(n)s left)", right=right.name, n=available),
        _(
            "%(tenant)s: the stock of %(right)s fell below %(threshold)s. %(n)s deliveries are left.\n\n"
            "Import more card keys: %(link)s",
            tenant=tenant.name,
            right=right.name,
            threshold=right.low_stock_threshold,
            n=available,
            link=link,
        ),
        kind="stock_low",
        about=("right", right_id),
    )


def by_state_totals(levels: list[StockLevel]) -> dict[str, int]:
    """Return the key counts by state summed over rights."""
    totals: dict[str, int] = defaultdict(int)
    for level in levels:
        for status, count in level.counts.items():
            totals[status] += count
    return dict(totals)
